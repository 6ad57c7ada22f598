"""What a tenant spent and used, summed for pages and the management API.

    daily_usage(tenant_id, days=30, split=...)   one row per day of the window (zeros included)
                                                 and per model or key; narrowed by an attribution
    grouped_usage(tenant_id, grouping, days=30)  the window's totals per end user or tag value
    top_users(tenant_id)                         this month's end users by spend, the top 10
    month_summary(tenant_id)                     this calendar month (UTC): totals (media units
                                                 included), the ledger's settled and reserved
                                                 spend, the plan's cap

Days are UTC calendar days, as the rollups and the monthly ledger count them. Per-model figures
come from the daily rollup (one row per day and model); per-key figures, and any narrowed to an
end user or tags (usage.attribution), from the usage records themselves, the only place that
knows the key, the user and the tags.
"""

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Count, DecimalField, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from usage.attribution import ANYONE, BY_USER, Attribution, Grouping, group_totals
from usage.models import DailyUsage, MonthlySpend, Outcome, UsageRecord
from usage.recording import month_of

SPLITS = ("model", "key")
TOP_USERS = 10
# The label of requests made without an API key: the dashboard's playground, made as a member.
NO_KEY = "playground"

ZERO = Decimal(0)


def money_sum(field: str):
    return Coalesce(Sum(field), Value(ZERO), output_field=DecimalField(max_digits=20, decimal_places=10))


def seconds_sum(field: str):
    return Coalesce(Sum(field), Value(ZERO), output_field=DecimalField(max_digits=14, decimal_places=3))


def int_sum(field: str):
    return Coalesce(Sum(field), Value(0))


def window_of(days: int, today: date | None) -> list[date]:
    if days < 1:
        raise ValueError(f"days must be at least 1, not {days}")
    last = today or timezone.now().date()
    return [last - timedelta(days=offset) for offset in range(days - 1, -1, -1)]


def daily_usage(tenant_id: int, *, days: int = 30, split: str | None = None, today: date | None = None,
                attribution: Attribution = ANYONE) -> list[dict]:
    """Per day of the last ``days`` days up to ``today`` (UTC, inclusive) and per split value:
    ``{"day", "split", "requests", "errors", "input_tokens", "output_tokens", "cost"}``.

    ``split`` is "model" (public model id), "key" (the key's name; "playground" for requests
    made without a key) or None (one row per day, split ""). Every split value seen in the window
    gets a row for every day, zeros included, ordered by day and then split value; a window
    without usage gives one zero row per day with split "". Only the requests ``attribution``
    keeps are counted.
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, not {split!r}")
    window = window_of(days, today)
    if split == "key":
        found = key_totals(records_between(tenant_id, window[0], window[-1], attribution))
    elif attribution:  # the rollups know no end user or tag
        found = record_totals(records_between(tenant_id, window[0], window[-1], attribution),
                              by_model=split == "model")
    else:
        found = model_totals(tenant_id, window[0], window[-1], by_model=split == "model")
    names = sorted({name for _, name in found}) or [""]
    return [
        {"day": day, "split": name, **found.get((day, name), empty_totals())}
        for day in window
        for name in names
    ]


def empty_totals() -> dict:
    return {"requests": 0, "errors": 0, "input_tokens": 0, "output_tokens": 0, "cost": ZERO}


def model_totals(tenant_id: int, first: date, last: date, *, by_model: bool) -> dict[tuple[date, str], dict]:
    rows = DailyUsage.objects.filter(tenant_id=tenant_id, day__gte=first, day__lte=last)
    group = ["day", "model"] if by_model else ["day"]
    rows = rows.values(*group).annotate(
        total_requests=int_sum("requests"), total_errors=int_sum("errors"),
        total_input=int_sum("input_tokens"), total_output=int_sum("output_tokens"), total_cost=money_sum("cost"),
    ).order_by()
    return {(row["day"], row["model"] if by_model else ""): totals_of(row) for row in rows}


def totals_of(row: dict) -> dict:
    return {"requests": row["total_requests"], "errors": row["total_errors"], "input_tokens": row["total_input"],
            "output_tokens": row["total_output"], "cost": row["total_cost"]}


def records_between(tenant_id: int, first: date, last: date, attribution: Attribution = ANYONE) -> QuerySet:
    """The tenant's records made on the UTC days ``first`` to ``last`` that ``attribution`` keeps."""
    start = datetime.combine(first, time.min, tzinfo=UTC)
    end = start + timedelta(days=(last - first).days + 1)
    return attribution.narrow(UsageRecord.objects.filter(tenant_id=tenant_id, created_at__gte=start,
                                                         created_at__lt=end))


def per_day(records: QuerySet, *group: str) -> QuerySet:
    return (
        records.annotate(day=TruncDate("created_at", tzinfo=UTC)).values("day", *group)
        .annotate(total_requests=Count("id"), total_errors=Count("id", filter=Q(outcome=Outcome.ERROR)),
                  total_input=int_sum("input_tokens"), total_output=int_sum("output_tokens"),
                  total_cost=money_sum("cost"))
        .order_by()
    )


def record_totals(records: QuerySet, *, by_model: bool) -> dict[tuple[date, str], dict]:
    rows = per_day(records, "model") if by_model else per_day(records)
    return {(row["day"], row["model"] if by_model else ""): totals_of(row) for row in rows}


def key_totals(records: QuerySet) -> dict[tuple[date, str], dict]:
    rows = list(per_day(records, "api_key_id", "api_key__name", "api_key__prefix"))
    # Key names need not be unique: two keys of one name are told apart by their prefix.
    ids_by_name: dict[str, set] = {}
    for row in rows:
        ids_by_name.setdefault(row["api_key__name"], set()).add(row["api_key_id"])
    totals: dict[tuple[date, str], dict] = {}
    for row in rows:
        name = row["api_key__name"]
        if row["api_key_id"] is None:
            label = NO_KEY
        elif len(ids_by_name[name]) > 1:
            label = f"{name} (tg-{row['api_key__prefix']})"
        else:
            label = name
        into = totals.setdefault((row["day"], label), empty_totals())
        into["requests"] += row["total_requests"]
        into["errors"] += row["total_errors"]
        into["input_tokens"] += row["total_input"]
        into["output_tokens"] += row["total_output"]
        into["cost"] += row["total_cost"]
    return totals


def grouped_usage(tenant_id: int, grouping: Grouping, *, days: int = 30, today: date | None = None,
                  attribution: Attribution = ANYONE, limit: int | None = None) -> list[dict]:
    """The last ``days`` days' totals (see daily_usage) per end user or tag value
    (usage.attribution.group_totals), the largest first."""
    window = window_of(days, today)
    return group_totals(records_between(tenant_id, window[0], window[-1], attribution), grouping, limit=limit)


def top_users(tenant_id: int, *, today: date | None = None, attribution: Attribution = ANYONE,
              limit: int = TOP_USERS) -> list[dict]:
    """This calendar month's (UTC) end users with the highest spend, the first ``limit``:
    group_totals rows, ``value`` the user. Requests that named no user are left out."""
    month = month_of(today or timezone.now().date())
    next_month = (month + timedelta(days=32)).replace(day=1)
    records = records_between(tenant_id, month, next_month - timedelta(days=1), attribution).exclude(end_user="")
    return group_totals(records, BY_USER, limit=limit)


def month_summary(tenant_id: int, *, today: date | None = None) -> dict:
    """This calendar month (UTC) of ``today``: ``{"month" (its first day), "requests",
    "input_tokens", "output_tokens", "images", "video_seconds", "characters", "audio_seconds"
    (media units made), "cost" (settled spend), "reserved" (held by requests in flight),
    "spend_limit" (the plan's monthly cap, None for none), "by_model": [{"model", "requests",
    "input_tokens", "output_tokens", "cost"}, ...]}``, models by cost, highest first."""
    month = month_of(today or timezone.now().date())
    next_month = (month + timedelta(days=32)).replace(day=1)
    rows = list(
        DailyUsage.objects.filter(tenant_id=tenant_id, day__gte=month, day__lt=next_month)
        .values("model")
        .annotate(total_requests=int_sum("requests"), total_input=int_sum("input_tokens"),
                  total_output=int_sum("output_tokens"), total_cost=money_sum("cost"),
                  total_images=int_sum("images"), total_video_seconds=seconds_sum("video_seconds"),
                  total_characters=int_sum("characters"), total_audio_seconds=seconds_sum("audio_seconds"))
        .order_by()
    )
    by_model = sorted(
        ({"model": row["model"], "requests": row["total_requests"], "input_tokens": row["total_input"],
          "output_tokens": row["total_output"], "cost": row["total_cost"]} for row in rows),
        key=lambda entry: (-entry["cost"], -entry["requests"], entry["model"]),
    )
    ledger = MonthlySpend.objects.filter(tenant_id=tenant_id, month=month).values("settled", "reserved").first()
    return {
        "month": month,
        "requests": sum(entry["requests"] for entry in by_model),
        "input_tokens": sum(entry["input_tokens"] for entry in by_model),
        "output_tokens": sum(entry["output_tokens"] for entry in by_model),
        "images": sum(row["total_images"] for row in rows),
        "video_seconds": sum((row["total_video_seconds"] for row in rows), start=ZERO),
        "characters": sum(row["total_characters"] for row in rows),
        "audio_seconds": sum((row["total_audio_seconds"] for row in rows), start=ZERO),
        "cost": ledger["settled"] if ledger else ZERO,
        "reserved": ledger["reserved"] if ledger else ZERO,
        "spend_limit": plan_spend_limit(tenant_id),
        "by_model": by_model,
    }


def plan_spend_limit(tenant_id: int) -> Decimal | None:
    # Through the tenant foreign key's own model, not an import: usage never imports the apps
    # above it (gateway -> billing -> usage).
    tenants = MonthlySpend._meta.get_field("tenant").related_model.objects
    limits = tenants.filter(pk=tenant_id).values_list("subscription__plan__monthly_spend_limit", flat=True)
    return next(iter(limits), None)


def models_used(tenant_id: int) -> list[str]:
    """Every model the tenant has made a request to, by name (from the rollups: one row per day
    and model, far fewer than the records)."""
    return list(DailyUsage.objects.filter(tenant_id=tenant_id).values_list("model", flat=True)
                .distinct().order_by("model"))
