"""The front page tells a newcomer where the API and the admin are."""

from django.test import Client


def test_home_page_says_where_the_api_and_admin_are(db):
    page = Client().get("/").content.decode()
    assert "http://testserver/v1" in page
    assert 'href="/admin/"' in page
