"""Usage pages of one tenant.

    /t/<slug>/usage/              charts of the last 30 days (by model or by key), this month's
                                  spend against the plan's cap, the latest requests; live
                                  (usage.js re-reads the parts below as requests settle)
      ?fragment=overview          just the totals, spend bar and charts
    /t/<slug>/usage/records/      every request, filtered (dates, model, key, outcome, request id)
                                  and paged
      ?fragment=rows              just the table rows: how usage.js fetches a settled request
    /t/<slug>/usage/export.csv    the same filters, all matching rows, streamed

Records come only through gateway.access; totals through usage.summaries.
"""

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta

from django import forms
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from gateway.access import get_api_keys_for_tenant, get_usage_records_for_tenant
from gateway.dashboard.tenancy import tenant_page
from usage import charts, summaries
from usage.charts import Chart, Series, format_count, format_money, format_money_short
from usage.models import Outcome, UsageRecord

SPLITS = {"model": "By model", "key": "By key"}
DAYS = 30
LATEST = 10
PAGE_SIZE = 50
NO_KEY = "none"  # the key filter's value for requests made without a key (the playground)


@tenant_page("usage")
def usage_page(request, membership):
    tenant = membership.tenant
    split = request.GET.get("split") if request.GET.get("split") in SPLITS else "model"
    context = overview(tenant, split)
    if request.GET.get("fragment") == "overview":
        return render(request, "dashboard/usage_overview.html", context)
    context["rows"] = [record_row(record) for record in get_usage_records_for_tenant(tenant)[:LATEST]]
    context["keep_rows"] = LATEST
    return render(request, "dashboard/usage.html", context)


def overview(tenant, split: str) -> dict:
    rows = summaries.daily_usage(tenant.id, days=DAYS, split=split)
    month = summaries.month_summary(tenant.id)
    days = sorted({row["day"] for row in rows})
    requests, tokens, cost = (
        series_of(rows, days, lambda row: row["requests"]),
        series_of(rows, days, lambda row: row["input_tokens"] + row["output_tokens"]),
        series_of(rows, days, lambda row: row["cost"]),
    )
    # One order for the three charts (by cost, then requests), so a series keeps its colour.
    ordered = sorted(requests, key=lambda name: (-cost[name].total, -requests[name].total, name))

    def pick(series: dict[str, Series]) -> list[Series]:
        return charts.fold_rest([series[name] for name in ordered])

    return {
        "split": split,
        "splits": SPLITS,
        "days": DAYS,
        "month": month,
        "window": {
            "requests": sum(s.total for s in requests.values()),
            "tokens": sum(s.total for s in tokens.values()),
            "cost": format_money(sum((s.total for s in cost.values()), start=0)),
        },
        "spent": format_money(month["cost"]),
        "limit": format_money(month["spend_limit"]) if month["spend_limit"] is not None else None,
        "spend_bar": charts.spend_bar(spent=month["cost"], reserved=month["reserved"], limit=month["spend_limit"]),
        "charts": [
            ("Requests per day", charts.stacked_bars(Chart(
                "chart-requests", "Requests per day", days, pick(requests),
                format_value=lambda v: format_count(v, "request"), format_short=lambda v: f"{v:,}"))),
            ("Tokens per day (input + output)", charts.stacked_bars(Chart(
                "chart-tokens", "Tokens per day", days, pick(tokens),
                format_value=lambda v: format_count(v, "token"), format_short=compact))),
            ("Cost per day", charts.lines(Chart(
                "chart-cost", "Cost per day", days, pick(cost), format_value=format_money,
                format_short=format_money_short))),
        ],
    }


def series_of(rows: list[dict], days: list, value) -> dict[str, Series]:
    by_split: dict[str, dict] = {}
    for row in rows:
        by_split.setdefault(row["split"], {})[row["day"]] = value(row)
    return {name: Series(name or "all", [values.get(day, 0) for day in days]) for name, values in by_split.items()}


def compact(value) -> str:
    for size, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if value >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:,}"


def record_row(record: UsageRecord) -> dict:
    """A usage record as the tables show it."""
    return {
        "request_id": record.request_id,
        "created_at": record.created_at,
        "model": record.model,
        "provider": record.provider,
        "key": key_label(record),
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "cost": format_money(record.cost),
        "outcome": record.outcome,
        "status": record.http_status,
        "error_type": record.error_type,
        "ending": record.get_ending_display(),
        "latency_ms": record.latency_ms,
        "streamed": record.streamed,
    }


def key_label(record: UsageRecord) -> str:
    if record.api_key_id is None:
        return summaries.NO_KEY
    return record.api_key.name


class RecordFilter(forms.Form):
    """The request log's filters; each one left empty does not filter."""

    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    model = forms.ChoiceField(required=False)
    key = forms.ChoiceField(required=False)
    outcome = forms.ChoiceField(required=False, choices=[("", "Any outcome"), *Outcome.choices])
    request_id = forms.CharField(required=False, max_length=64, label="Request id")

    def __init__(self, data, *, tenant):
        super().__init__(data)
        self.fields["model"].choices = [("", "Any model")] + [(m, m) for m in summaries.models_used(tenant.id)]
        self.fields["key"].choices = [("", "Any key"), (NO_KEY, "No key (playground)")] + [
            (str(key.pk), f"{key.name} (tg-{key.prefix})") for key in get_api_keys_for_tenant(tenant)
        ]

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            raise forms.ValidationError("'From' is after 'To': pick a start date on or before the end date.")
        return cleaned

    def apply(self, records: QuerySet) -> QuerySet:
        """The records that pass every valid filter (an invalid one is reported and ignored)."""
        wanted = self.cleaned_data if self.is_valid() else getattr(self, "cleaned_data", {})
        if wanted.get("since"):
            records = records.filter(created_at__gte=datetime.combine(wanted["since"], time.min, tzinfo=UTC))
        if wanted.get("until"):
            end = datetime.combine(wanted["until"], time.min, tzinfo=UTC) + timedelta(days=1)
            records = records.filter(created_at__lt=end)
        if wanted.get("model"):
            records = records.filter(model=wanted["model"])
        if wanted.get("key") == NO_KEY:
            records = records.filter(api_key__isnull=True)
        elif wanted.get("key"):
            records = records.filter(api_key_id=int(wanted["key"]))
        if wanted.get("outcome"):
            records = records.filter(outcome=wanted["outcome"])
        if wanted.get("request_id"):
            records = records.filter(request_id=wanted["request_id"].strip())
        return records


def filtered_records(request, tenant) -> tuple[RecordFilter, QuerySet]:
    form = RecordFilter(request.GET, tenant=tenant)
    return form, form.apply(get_usage_records_for_tenant(tenant))


@tenant_page("usage")
def records_page(request, membership):
    tenant = membership.tenant
    form, records = filtered_records(request, tenant)
    if request.GET.get("fragment") == "rows":
        rows = [record_row(record) for record in records[:PAGE_SIZE]]
        return render(request, "dashboard/usage_rows.html", {"rows": rows})
    page = Paginator(records, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "dashboard/usage_records.html", {
        "form": form,
        "page": page,
        "rows": [record_row(record) for record in page],
        "query": query.urlencode(),
        # New requests are added live only where they belong: the first page.
        "live": page.number == 1,
        "keep_rows": PAGE_SIZE,
    })


CSV_COLUMNS = [
    "created_at", "request_id", "model", "provider", "upstream_model", "api_key", "capability", "streamed",
    "input_tokens", "output_tokens", "reasoning_tokens", "cached_tokens", "cache_write_tokens", "cost",
    "outcome", "http_status", "error_type", "ending", "latency_ms", "ttft_ms", "byok", "usage_estimated",
]
NUMBER_COLUMNS = {"input_tokens", "output_tokens", "reasoning_tokens", "cached_tokens", "cache_write_tokens", "cost",
                  "http_status", "latency_ms", "ttft_ms"}
# OWASP's CSV-injection rule: a text cell starting with one of these is a formula (or is read as
# one after a spreadsheet strips the tab or CR) to Excel, LibreOffice and Sheets.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@tenant_page("usage")
def export_csv(request, membership):
    tenant = membership.tenant
    _, records = filtered_records(request, tenant)
    filename = f"usage-{tenant.slug}-{timezone.now():%Y%m%d-%H%M%S}.csv"
    return StreamingHttpResponse(csv_lines(records), content_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def spreadsheet_safe(value) -> str:
    """A text cell as a spreadsheet shows it: one that would start a formula gets a leading
    apostrophe. Key names are the tenant's input, model names and errors the providers'."""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


async def csv_lines(records: QuerySet) -> AsyncIterator[str]:
    """Every matching record, read in chunks as the client takes them: an export of a busy month
    never sits in memory whole."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(values) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(value if column in NUMBER_COLUMNS else spreadsheet_safe(value)
                        for column, value in zip(CSV_COLUMNS, values, strict=True))
        return buffer.getvalue()

    yield line(CSV_COLUMNS)
    async for record in records.aiterator(chunk_size=1000):
        yield line([
            record.created_at.isoformat(), record.request_id, record.model, record.provider, record.upstream_model,
            key_label(record), record.capability, record.streamed, record.input_tokens,
            record.output_tokens, record.reasoning_tokens, record.cached_tokens, record.cache_write_tokens,
            f"{record.cost.normalize():f}", record.outcome, record.http_status, record.error_type, record.ending, record.latency_ms,
            "" if record.ttft_ms is None else record.ttft_ms, record.byok, record.usage_estimated,
        ])
