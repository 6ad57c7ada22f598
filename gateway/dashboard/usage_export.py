"""/t/<slug>/usage/export.csv: the request log's filters, every matching row, streamed.

    (no group_by)           one row per request, with who it was for (end_user, tags as JSON)
    ?group_by=user          one row per end user: requests, errors, tokens and cost
    ?group_by=tag:<key>     one row per value of that tag

Every text cell a spreadsheet would read as a formula is neutralised (spreadsheet_safe): key
names, end users and tags are the tenant's (or its clients') input, model and error names the
providers'.
"""

import csv
import io
import json
from collections.abc import AsyncIterator, Callable, Iterable

from django.db.models import QuerySet
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.utils import timezone

from gateway.dashboard.tenancy import tenant_page
from gateway.dashboard.usage_views import filtered_records, key_label
from usage.attribution import Grouping, group_of, group_rows, parse_group_by

CSV_COLUMNS = [
    "created_at", "request_id", "model", "provider", "upstream_model", "api_key", "capability", "streamed",
    "input_tokens", "output_tokens", "reasoning_tokens", "cached_tokens", "cache_write_tokens", "cost",
    "outcome", "http_status", "error_type", "ending", "latency_ms", "ttft_ms", "byok", "usage_estimated",
    "end_user", "tags",
]
GROUP_COLUMNS = ["requests", "errors", "input_tokens", "output_tokens", "cost"]
NUMBER_COLUMNS = {"input_tokens", "output_tokens", "reasoning_tokens", "cached_tokens", "cache_write_tokens", "cost",
                  "http_status", "latency_ms", "ttft_ms", "requests", "errors"}
# OWASP's CSV-injection rule: a text cell starting with one of these is a formula (or is read as
# one after a spreadsheet strips the tab or CR) to Excel, LibreOffice and Sheets.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@tenant_page("usage")
def export_csv(request, membership):
    tenant = membership.tenant
    form, records = filtered_records(request, tenant)
    if not form.is_valid():  # the page shows a bad filter beside what it ignored; a file would not say so
        problems = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())
        return HttpResponseBadRequest(f"Nothing exported, a filter is not valid ({problems}). Correct it and export "
                                      "again.", content_type="text/plain; charset=utf-8")
    stamp = f"{timezone.now():%Y%m%d-%H%M%S}"
    if "group_by" in request.GET:
        try:
            grouping = parse_group_by(request.GET["group_by"])
        except ValueError as error:
            return HttpResponseBadRequest(str(error), content_type="text/plain; charset=utf-8")
        label = "user" if grouping.tag_key is None else "tag"
        lines, filename = group_lines(records, grouping), f"usage-by-{label}-{tenant.slug}-{stamp}.csv"
    else:
        lines, filename = record_lines(records), f"usage-{tenant.slug}-{stamp}.csv"
    return StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def spreadsheet_safe(value) -> str:
    """A text cell as a spreadsheet shows it: one that would start a formula gets a leading
    apostrophe."""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_writer(columns: list[str]) -> Callable[[Iterable], str]:
    """A function writing one row of ``columns`` as a CSV line, text cells spreadsheet-safe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(values: Iterable) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(value if column in NUMBER_COLUMNS else spreadsheet_safe(value)
                        for column, value in zip(columns, values, strict=True))
        return buffer.getvalue()

    return line


def tags_cell(tags: dict) -> str:
    return json.dumps(tags, ensure_ascii=False, sort_keys=True) if tags else ""


async def record_lines(records: QuerySet) -> AsyncIterator[str]:
    """Every matching record, read in chunks as the client takes them: an export of a busy month
    never sits in memory whole."""
    line = csv_writer(CSV_COLUMNS)
    yield line(CSV_COLUMNS)
    async for record in records.aiterator(chunk_size=1000):
        yield line([
            record.created_at.isoformat(), record.request_id, record.model, record.provider, record.upstream_model,
            key_label(record), record.capability, record.streamed, record.input_tokens,
            record.output_tokens, record.reasoning_tokens, record.cached_tokens, record.cache_write_tokens,
            f"{record.cost.normalize():f}", record.outcome, record.http_status, record.error_type, record.ending,
            record.latency_ms, "" if record.ttft_ms is None else record.ttft_ms, record.byok,
            record.usage_estimated, record.end_user, tags_cell(record.tags),
        ])


async def group_lines(records: QuerySet, grouping: Grouping) -> AsyncIterator[str]:
    """The matching records' totals per end user or tag value, the largest spend first."""
    columns = ["user" if grouping.tag_key is None else f"tag:{grouping.tag_key}", *GROUP_COLUMNS]
    line = csv_writer(columns)
    yield line(columns)
    async for row in group_rows(records, grouping).aiterator(chunk_size=1000):
        row = group_of(row)
        yield line([row["value"], row["requests"], row["errors"], row["input_tokens"], row["output_tokens"],
                    f"{row['cost'].normalize():f}"])
