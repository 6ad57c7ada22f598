"""Daily and monthly usage summaries add up exactly what the tenant's requests recorded."""

from datetime import timedelta
from decimal import Decimal

import openai
import pytest
from django.utils import timezone

from billing.models import Plan, Subscription
from gateway.api_keys import issue_api_key
from tests.fakes.openai_upstream import Reply
from usage.models import UsageRecord
from usage.summaries import daily_usage, month_summary

ZERO = Decimal(0)


def ask(sdk, text: str, model: str = "demo/echo"):
    return sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])


def rows_on(rows: list[dict], day) -> dict[str, dict]:
    return {row["split"]: row for row in rows if row["day"] == day}


def cost_of(tenant, **filters) -> Decimal:
    return sum((r.cost for r in UsageRecord.objects.filter(tenant=tenant, **filters)), ZERO)


def test_daily_usage_by_model_counts_each_request_on_its_day(client, other_client, tenant, other_tenant,
                                                             fake_openai):
    ask(client, "one two three")
    ask(client, "four five")
    fake_openai.enqueue(Reply(status=400, error_type="invalid_request_error", error_message="nope"))
    with pytest.raises(openai.BadRequestError):
        ask(client, "x", model="openai/gpt-4o-mini")
    ask(other_client, "charlie's own")
    today = timezone.now().date()

    rows = daily_usage(tenant.id, split="model", today=today)

    assert len(rows) == 30 * 2  # every day of the window, for each model seen in it
    assert [row["day"] for row in rows[::2]] == [today - timedelta(days=n) for n in range(29, -1, -1)]
    echo, mini = rows_on(rows, today)["demo/echo"], rows_on(rows, today)["openai/gpt-4o-mini"]
    assert (echo["requests"], echo["errors"], echo["input_tokens"], echo["output_tokens"]) == (2, 0, 5, 5)
    assert echo["cost"] == cost_of(tenant, model="demo/echo") > 0
    assert (mini["requests"], mini["errors"]) == (1, 1)
    yesterday = rows_on(rows, today - timedelta(days=1))["demo/echo"]
    assert (yesterday["requests"], yesterday["input_tokens"], yesterday["cost"]) == (0, 0, ZERO)

    theirs = rows_on(daily_usage(other_tenant.id, split="model", today=today), today)
    assert list(theirs) == ["demo/echo"] and theirs["demo/echo"]["requests"] == 1


def test_daily_usage_by_key_names_each_key(client, sdk_for, tenant, other_tenant, other_client):
    second = issue_api_key(tenant, name="ci server").raw
    twin = issue_api_key(tenant, name="ci server")
    ask(client, "a b")
    ask(sdk_for(second), "c d e")
    ask(sdk_for(second), "f")
    ask(sdk_for(twin.raw), "g")
    ask(other_client, "not alice's")
    today = timezone.now().date()

    on_today = rows_on(daily_usage(tenant.id, split="key", today=today), today)

    first_ci = UsageRecord.objects.filter(tenant=tenant, input_tokens=3).get().api_key
    assert set(on_today) == {"alice laptop", f"ci server (tg-{first_ci.prefix})",
                             f"ci server (tg-{twin.api_key.prefix})"}
    assert on_today["alice laptop"]["requests"] == 1
    ci = on_today[f"ci server (tg-{first_ci.prefix})"]
    assert (ci["requests"], ci["input_tokens"], ci["cost"]) == (2, 4, cost_of(tenant, api_key=first_ci))
    assert "charlie laptop" not in rows_on(daily_usage(tenant.id, split="key", today=today), today)


def test_daily_usage_without_split_is_one_row_per_day(client, tenant, other_tenant):
    ask(client, "one")
    ask(client, "two three")
    today = timezone.now().date()

    rows = daily_usage(tenant.id, days=7, today=today)

    assert [(row["day"], row["split"]) for row in rows] == [(today - timedelta(days=n), "") for n in range(6, -1, -1)]
    assert rows[-1]["requests"] == 2 and rows[-1]["output_tokens"] == 3
    assert all(row["requests"] == 0 for row in daily_usage(other_tenant.id, days=7, today=today))


def test_window_moves_with_today_and_empty_windows_are_zero(client, tenant):
    ask(client, "one")
    today = timezone.now().date()

    five_days_on = daily_usage(tenant.id, split="model", today=today + timedelta(days=5))
    assert [row["requests"] for row in five_days_on][-6:] == [1, 0, 0, 0, 0, 0]

    past_the_window = daily_usage(tenant.id, split="model", today=today + timedelta(days=30))
    assert len(past_the_window) == 30
    assert {row["split"] for row in past_the_window} == {""}
    assert all(row["requests"] == 0 and row["cost"] == ZERO for row in past_the_window)

    with pytest.raises(ValueError):
        daily_usage(tenant.id, split="provider")


def test_month_summary_totals_the_ledger_and_the_plan_cap(client, other_tenant, tenant, fake_openai):
    ask(client, "one two three")
    fake_openai.enqueue(Reply(usage={"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200}))
    ask(client, "hi", model="openai/gpt-4o-mini")
    today = timezone.now().date()

    summary = month_summary(tenant.id, today=today)

    assert summary["month"] == today.replace(day=1)
    assert (summary["requests"], summary["input_tokens"], summary["output_tokens"]) == (2, 1003, 203)
    assert summary["cost"] == cost_of(tenant) == Decimal("0.00015") + Decimal("0.00012") + Decimal("0.0000003") \
        + Decimal("0.0000012")
    assert summary["reserved"] == ZERO
    assert summary["spend_limit"] == Decimal("250.00")
    assert [entry["model"] for entry in summary["by_model"]] == ["openai/gpt-4o-mini", "demo/echo"]
    assert summary["by_model"][0]["cost"] == cost_of(tenant, model="openai/gpt-4o-mini")

    theirs = month_summary(other_tenant.id, today=today)
    assert (theirs["requests"], theirs["cost"], theirs["by_model"]) == (0, ZERO, [])

    next_month = month_summary(tenant.id, today=(today.replace(day=1) + timedelta(days=32)))
    assert (next_month["requests"], next_month["cost"], next_month["by_model"]) == (0, ZERO, [])


def test_month_summary_has_no_cap_on_an_uncapped_plan(tenant):
    Subscription.objects.filter(tenant=tenant).update(plan=Plan.objects.get(slug="enterprise"))
    assert month_summary(tenant.id)["spend_limit"] is None
