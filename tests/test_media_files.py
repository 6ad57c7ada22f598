"""Stored media: signed, expiring, tenant-scoped URLs served by the gateway; another tenant's
file or a tampered URL is a 404."""

import os
import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

import httpx
import openai
import pytest

from media.models import MediaFile
from tests.fakes.png import png_size


@pytest.fixture
def image_url(client) -> str:
    return client.images.generate(model="openai/dall-e-2", prompt="a small square", size="256x256").data[0].url


def file_id_of(url: str) -> str:
    return urlsplit(url).path.split("/")[3]


def test_a_signed_url_works_without_a_key_and_only_for_its_own_file(image_url, client, other_client, tenant,
                                                                       other_tenant, media_storage):
    file = MediaFile.objects.get(tenant=tenant)
    assert (media_storage / file.storage_name).read_bytes() == httpx.get(image_url).content
    assert file.storage_name.startswith(f"{tenant.pk}/") and file.storage_name.endswith(".png")

    # Charlie's own image, and his URL's signature put on Alice's file id: not found.
    other_url = other_client.images.generate(model="openai/dall-e-2", prompt="his", size="256x256").data[0].url
    query = urlsplit(other_url).query
    forged = httpx.get(image_url.split("?")[0] + "?" + query)
    assert forged.status_code == 404 and forged.json()["error"]["code"] == "media_not_found"
    tampered = httpx.get(image_url[:-4] + "0000")
    assert tampered.status_code == 404
    assert httpx.get(image_url.replace(str(file.id), "not-a-uuid")).status_code == 404
    # A longer life than it was signed for is not a valid signature either.
    expires = int(parse_qs(urlsplit(image_url).query)["expires"][0])
    assert httpx.get(image_url.replace(f"expires={expires}", f"expires={expires + 3600}")).status_code == 404
    assert MediaFile.objects.filter(tenant=other_tenant).count() == 1


def test_an_expired_url_says_where_to_get_a_fresh_one(client, settings, tenant):
    settings.MEDIA_URL_TTL_SECONDS = -1
    url = client.images.generate(model="openai/dall-e-2", prompt="old news", size="256x256").data[0].url
    expired = httpx.get(url)
    assert expired.status_code == 403
    file_id = file_id_of(url)
    assert expired.json()["error"] == {
        "message": f"This link to media '{file_id}' has expired. GET /v1/media/{file_id} with your API key for a "
                   "fresh one.", "type": "permission_error", "param": None, "code": "link_expired"}

    settings.MEDIA_URL_TTL_SECONDS = 3600
    fresh = client.get(f"/media/{file_id}", cast_to=object)
    assert (fresh["id"], fresh["kind"], fresh["content_type"]) == (file_id, "image", "image/png")
    assert png_size(httpx.get(fresh["url"]).content) == (4, 4)


def test_the_api_key_reaches_its_own_files_only(image_url, client, other_client, gateway_url, api_key,
                                                other_api_key):
    file_id = file_id_of(image_url)
    described = client.get(f"/media/{file_id}", cast_to=object)
    assert described["bytes"] == len(httpx.get(image_url).content)
    content_url = f"{gateway_url}/v1/media/{file_id}/content"
    own = httpx.get(content_url, headers={"Authorization": f"Bearer {api_key}"})
    assert own.status_code == 200 and png_size(own.content) == (4, 4)

    assert httpx.get(content_url, headers={"Authorization": f"Bearer {other_api_key}"}).status_code == 404
    with pytest.raises(openai.NotFoundError):
        other_client.get(f"/media/{file_id}", cast_to=object)
    assert httpx.get(content_url).status_code == 401  # no key, no signature


def test_ranges_are_served_for_players_that_seek(image_url):
    whole = httpx.get(image_url).content
    part = httpx.get(image_url, headers={"Range": "bytes=8-15"})
    assert part.status_code == 206
    assert part.content == whole[8:16]
    assert part.headers["content-range"] == f"bytes 8-15/{len(whole)}"
    tail = httpx.get(image_url, headers={"Range": "bytes=-4"})
    assert tail.content == whole[-4:]
    outside = httpx.get(image_url, headers={"Range": f"bytes={len(whole) + 10}-"})
    assert outside.status_code == 416 and outside.headers["content-range"] == f"bytes */{len(whole)}"


def settings_in_a_fresh_process(**environ) -> subprocess.CompletedProcess:
    code = ("import django; django.setup(); from django.core.files.storage import storages; "
            "media = storages['media']; print(type(media).__name__, media.bucket_name, media.endpoint_url, "
            "media.location, media.default_acl)")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "DJANGO_SETTINGS_MODULE": "gateway.settings", **environ})


def test_an_s3_compatible_bucket_is_configured_from_the_environment():
    done = settings_in_a_fresh_process(MEDIA_STORAGE="s3", MEDIA_S3_BUCKET="tollgate-media",
                                       MEDIA_S3_ENDPOINT_URL="https://minio.internal:9000", MEDIA_S3_PREFIX="gen")
    assert done.stdout.split() == ["S3Storage", "tollgate-media", "https://minio.internal:9000", "gen", "private"]
    missing = settings_in_a_fresh_process(MEDIA_STORAGE="s3", MEDIA_S3_BUCKET="")
    assert missing.returncode != 0 and "MEDIA_S3_BUCKET" in missing.stderr
    wrong = settings_in_a_fresh_process(MEDIA_STORAGE="ftp")
    assert wrong.returncode != 0 and "MEDIA_STORAGE must be 'local' or 's3'" in wrong.stderr
