"""Usage pages of one tenant.

    /t/<slug>/usage/              charts of the last 30 days (by model or by key), this month's
                                  spend against the plan's cap and its top users by spend, the
                                  latest requests; live (usage.js re-reads the parts below as
                                  requests settle)
      ?user=alice&tag=team=search narrows the charts, top users and requests to those requests
      ?fragment=overview          just the totals, spend bar, top users and charts
    /t/<slug>/usage/records/      every request, filtered (dates, model, key, user, tag, outcome,
                                  request id) and paged
      ?fragment=rows              just the table rows: how usage.js fetches a settled request
    /t/<slug>/usage/export.csv    the same filters as CSV (usage_export)

Records come only through gateway.access; totals through usage.summaries.
"""

from datetime import UTC, datetime, time, timedelta
from urllib.parse import urlencode

from django import forms
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.shortcuts import render

from gateway.access import get_api_keys_for_tenant, get_usage_records_for_tenant
from gateway.dashboard.tenancy import tenant_page
from usage import charts, summaries
from usage.attribution import MAX_USER_CHARS, TAG_SYNTAX, Attribution, parse_tag, tag_keys
from usage.charts import Chart, Series, format_count, format_money, format_money_short
from usage.models import Outcome, UsageRecord

SPLITS = {"model": "By model", "key": "By key"}
DAYS = 30
LATEST = 10
PAGE_SIZE = 50
NO_KEY = "none"  # the key filter's value for requests made without a key (the playground)


class AttributionFilter(forms.Form):
    """Whose requests: those for one end user, with one tag; each left empty does not filter."""

    user = forms.CharField(required=False, max_length=MAX_USER_CHARS, label="User",
                           widget=forms.TextInput(attrs={"placeholder": "any"}))
    tag = forms.CharField(required=False, max_length=600, label="Tag", widget=forms.TextInput(
        attrs={"placeholder": "team=search", "title": f"One tag, as {TAG_SYNTAX}"}))

    def clean_tag(self) -> tuple[str, str] | None:
        text = self.cleaned_data["tag"]
        try:
            return parse_tag(text) if text else None
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None

    def valid_data(self) -> dict:
        """The values of the valid filters (an invalid one is reported and ignored)."""
        return self.cleaned_data if self.is_valid() else getattr(self, "cleaned_data", {})

    def attribution(self) -> Attribution:
        wanted = self.valid_data()
        return Attribution(end_user=wanted.get("user") or None, tags=(wanted["tag"],) if wanted.get("tag") else ())

    def query(self) -> str:
        """The valid user and tag filters as a query string ('' for none), for links and fragments."""
        wanted = self.valid_data()
        pairs = {"user": wanted.get("user"), "tag": "=".join(wanted["tag"]) if wanted.get("tag") else None}
        return urlencode({name: value for name, value in pairs.items() if value})


@tenant_page("usage")
def usage_page(request, membership):
    tenant = membership.tenant
    split = request.GET.get("split") if request.GET.get("split") in SPLITS else "model"
    who = AttributionFilter(request.GET)
    context = {**overview(tenant, split, who.attribution()), "who": who, "who_query": who.query()}
    if request.GET.get("fragment") == "overview":
        return render(request, "dashboard/usage_overview.html", context)
    latest = who.attribution().narrow(get_usage_records_for_tenant(tenant))[:LATEST]
    context["rows"] = [record_row(record) for record in latest]
    context["keep_rows"] = LATEST
    return render(request, "dashboard/usage.html", context)


def overview(tenant, split: str, attribution: Attribution) -> dict:
    rows = summaries.daily_usage(tenant.id, days=DAYS, split=split, attribution=attribution)
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
        "narrowed": describe(attribution),
        "top_users": [{**user, "cost": format_money(user["cost"]), "link": user_link(split, attribution, user["value"])}
                      for user in summaries.top_users(tenant.id, attribution=attribution)],
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


def describe(attribution: Attribution) -> str:
    """'for user alice, with tag team=search'; '' for everyone's requests."""
    parts = ([f"for user {attribution.end_user}"] if attribution.end_user is not None else []) + [
        f"with tag {key}={value}" for key, value in attribution.tags]
    return ", ".join(parts)


def user_link(split: str, attribution: Attribution, end_user: str) -> str:
    """The usage page narrowed to one end user (keeping the split and the tags)."""
    return "?" + urlencode([("split", split), ("user", end_user),
                            *(("tag", f"{key}={value}") for key, value in attribution.tags)])


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
        "end_user": record.end_user,
        "tags": " ".join(f"{key}={value}" for key, value in sorted(record.tags.items())) if record.tags else "",
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


class RecordFilter(AttributionFilter):
    """The request log's filters; each one left empty does not filter."""

    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    model = forms.ChoiceField(required=False)
    key = forms.ChoiceField(required=False)
    outcome = forms.ChoiceField(required=False, choices=[("", "Any outcome"), *Outcome.choices])
    request_id = forms.CharField(required=False, max_length=64, label="Request id")

    field_order = ["since", "until", "model", "key", "user", "tag", "outcome", "request_id"]

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
        wanted = self.valid_data()
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
        return self.attribution().narrow(records)


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
        "export_totals": [("user", "per user")] + [(f"tag:{key}", f"per tag {key}") for key in tag_keys(records)],
        # New requests are added live only where they belong: the first page.
        "live": page.number == 1,
        "keep_rows": PAGE_SIZE,
    })
