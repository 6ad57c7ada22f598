"""Operators probe every deployment with `manage.py check_providers`."""

import io

from django.core.management import call_command

from tests.fakes.openai_upstream import Reply


def test_check_providers_reports_each_deployment_and_what_failed(catalog, fake_openai, settings):
    settings.UPSTREAM_MAX_RETRIES = 0
    fake_openai.enqueue(Reply(status=503, error_message="overloaded right now"))
    out = io.StringIO()
    call_command("check_providers", "--model", "openai/gpt-4o-mini", "--model", "demo/echo", stdout=out)
    report = out.getvalue()
    assert "ok    demo/echo (demo/echo): answered in" in report
    assert "down  openai/gpt-4o-mini (openai/gpt-4o-mini): " in report and "overloaded right now" in report
    assert "1 of 2 deployments answered." in report
    sent = fake_openai.requests[-1]["body"]
    assert sent["max_completion_tokens"] == 1


def test_check_providers_with_nothing_matching_says_so(catalog):
    out = io.StringIO()
    call_command("check_providers", "--provider", "nobody", stdout=out)
    assert "No enabled chat deployment matches." in out.getvalue()
