"""A tenant's usage: its records (filtered, paged by cursor) and a summary (this month, per day)."""

from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from gateway.access import get_usage_records_for_tenant
from gateway.api import usage_serializers as api
from gateway.api.errors import errors
from gateway.api.permissions import EVERYONE
from gateway.api.views.tenants import TenantView
from usage.summaries import daily_usage, grouped_usage, month_summary

MAX_GROUPS = 1000


class UsagePages(CursorPagination):
    """Pages by cursor; ``cursor`` or ``page_size`` given empty or ``page_size`` out of range is
    a 400 (DRF would serve the default page), a cursor of nothing this list gave a 404."""

    ordering = ("-created_at", "-pk")
    page_size = api.PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = api.MAX_PAGE_SIZE
    invalid_cursor_message = "No such page: follow the 'next' or 'previous' link of an earlier answer."

    def paginate_queryset(self, queryset, request, view=None):
        api.PageQuerySerializer(data=request.query_params).is_valid(raise_exception=True)
        return super().paginate_queryset(queryset, request, view)

    def get_schema_operation_parameters(self, view):
        return [
            {"name": self.cursor_query_param, "in": "query", "required": False,
             "schema": {"type": "string", "minLength": 1},
             "description": "The page to read: the cursor in a previous answer's 'next' or 'previous' link."},
            {"name": self.page_size_query_param, "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": self.max_page_size, "default": self.page_size},
             "description": "Records per page."},
        ]


@extend_schema(summary="List usage records", tags=["usage"], parameters=[api.UsageFilterSerializer], responses={
    200: api.UsageRecordSerializer(many=True), **errors(400)},
    description="One record per request, newest first, 50 a page (``page_size`` up to 500); follow ``next`` "
                "for older records. Filter by time (``start``, ``end``: ISO 8601 times or YYYY-MM-DD days, "
                "UTC), ``model``, ``key`` (a key id), ``user`` (the end user the request named) and ``tag`` "
                "(``key=value``, repeatable; a tag without '=' is refused). A parameter given empty "
                "(``?start=``) is refused (400); leave it out instead.")
class UsageRecordListView(TenantView, generics.ListAPIView):
    roles = {"GET": (EVERYONE, "reading usage")}
    serializer_class = api.UsageRecordSerializer
    pagination_class = UsagePages

    def get_queryset(self):
        records = get_usage_records_for_tenant(self.actor.tenant)
        query = api.UsageFilterSerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        wanted = query.validated_data
        if "start" in wanted:
            records = records.filter(created_at__gte=wanted["start"])
        if "end" in wanted:
            records = records.filter(created_at__lt=wanted["end"])
        if "model" in wanted:
            records = records.filter(model=wanted["model"])
        if "key" in wanted:
            records = records.filter(api_key_id=wanted["key"])
        return query.attribution().narrow(records)


class UsageSummaryView(TenantView):
    roles = {"GET": (EVERYONE, "reading usage")}

    @extend_schema(summary="Usage summary", tags=["usage"], parameters=[api.SummaryQuerySerializer],
                   responses={200: api.UsageSummarySerializer, **errors(400)},
                   description="This month's totals (settled spend, spend held by requests in flight, the cap, "
                               "per model) and one row per day of the last ``days`` days (UTC, zeros included), "
                               "per model or key with ``split``; with ``group_by`` (``user`` or ``tag:<key>``), "
                               "the window's totals per end user or tag value. ``user`` and ``tag`` (``key=value``, "
                               "repeatable) narrow the daily rows and the groups to the requests for that user or "
                               "with those tags; ``month`` is always the whole tenant's, as its cap is. A "
                               "parameter given empty (``?split=``) is refused (400); leave it out instead.")
    def get(self, request, slug: str):
        query = api.SummaryQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        wanted, attribution, tenant_id = query.validated_data, query.attribution(), self.actor.tenant.pk
        grouping = wanted.get("group_by")
        return Response(api.UsageSummarySerializer({
            "month": month_summary(tenant_id),
            "daily": daily_usage(tenant_id, days=wanted["days"], split=wanted.get("split"), attribution=attribution),
            "groups": [] if grouping is None else grouped_usage(tenant_id, grouping, days=wanted["days"],
                                                                attribution=attribution, limit=MAX_GROUPS),
        }).data)
