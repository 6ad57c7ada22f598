"""The management API's usage: records (filtered, paged by cursor) and the summary, their query
parameters and answers (gateway/api/views/usage.py). Who a request was for is read as in
usage.attribution: ``user``, ``tag`` (key=value, repeatable) and the summary's ``group_by``."""

import re
from datetime import UTC, date, datetime, time, timedelta

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from gateway.api.serializers import MONEY, PLAN_MONEY
from usage.attribution import (
    GROUP_BY_SYNTAX,
    MAX_USER_CHARS,
    TAG_SYNTAX,
    Attribution,
    Grouping,
    parse_group_by,
    parse_tag,
)
from usage.models import UsageRecord
from usage.summaries import SPLITS

DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
PAGE_SIZE, MAX_PAGE_SIZE = 50, 500
MAX_ID = 2**63 - 1  # BigAutoField's largest: a larger one would overflow the database's integer


@extend_schema_field({"type": "string", "pattern": "^[^=]+=", "example": "team=search"})
class TagField(serializers.CharField):
    """A tag as key=value; read as a (key, value) pair."""

    def to_internal_value(self, data) -> tuple[str, str]:
        text = super().to_internal_value(data)
        try:
            return parse_tag(text)
        except ValueError as error:
            raise serializers.ValidationError(str(error)) from None


@extend_schema_field({"type": "string", "pattern": r"^(user|tag:[\s\S]+)$", "example": "tag:team"})
class GroupByField(serializers.CharField):
    def __init__(self, **kwargs):
        super().__init__(trim_whitespace=False, **kwargs)  # "user\n" is not "user"

    def to_internal_value(self, data) -> Grouping:
        text = super().to_internal_value(data)
        try:
            return parse_group_by(text)
        except ValueError as error:
            raise serializers.ValidationError(str(error)) from None


class AttributionQuerySerializer(serializers.Serializer):
    """The ``user`` and ``tag`` filters, read as an Attribution (``attribution()``)."""

    user = serializers.CharField(required=False, max_length=MAX_USER_CHARS, trim_whitespace=False,
                                 help_text="Only the requests made for this end user (the request's `user` field "
                                           "or x-tollgate-user header), exactly as it was sent.")
    tag = serializers.ListField(child=TagField(), required=False,
                                help_text=f"Only the requests with this tag, as {TAG_SYNTAX} (`?tag=team=search`; "
                                          "the key ends at the first '='). Repeat it for several: every one must "
                                          "match.")

    def attribution(self) -> Attribution:
        wanted = self.validated_data
        return Attribution(end_user=wanted.get("user"), tags=tuple(wanted.get("tag", ())))


class GroupByQuerySerializer(serializers.Serializer):
    group_by = GroupByField(required=False, help_text=f"Total the window per end user or per value of one tag: "
                                                      f"{GROUP_BY_SYNTAX} (`tag:team`). Left out, no groups.")


class GroupUsageSerializer(serializers.Serializer):
    value = serializers.CharField(help_text="The end user or tag value; '' for requests that named no user or "
                                            "lack the tag.")
    requests = serializers.IntegerField()
    errors = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cost = serializers.DecimalField(**MONEY)


class UsageRecordSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="request_id", help_text="The request id (x-tollgate-request-id).")
    key = serializers.SerializerMethodField()
    cost = serializers.DecimalField(**MONEY)
    end_user = serializers.CharField(help_text="Who the request was for: its `user` (or x-tollgate-user); '' "
                                               "for none.")
    tags = serializers.DictField(child=serializers.CharField(allow_blank=True),
                                 help_text="The request's `metadata` (or x-tollgate-tags).")

    class Meta:
        model = UsageRecord
        fields = ["id", "created_at", "model", "provider", "capability", "key", "streamed", "input_tokens",
                  "output_tokens", "reasoning_tokens", "cached_tokens", "cache_write_tokens", "images",
                  "video_seconds", "characters", "audio_seconds", "media_detail", "web_searches", "web_fetches",
                  "code_seconds", "cost",
                  "latency_ms", "ttft_ms", "outcome",
                  "http_status", "error_type", "ending", "byok", "end_user", "tags"]
        read_only_fields = fields

    def get_key(self, record: UsageRecord) -> dict | None:
        """The key the request was made with (id, name, prefix); null for the dashboard's playground."""
        if record.api_key is None:
            return None
        return {"id": record.api_key_id, "name": record.api_key.name, "prefix": record.api_key.display_prefix}


class QuerySerializer(serializers.Serializer):
    """Query parameters. One given empty (``?start=``) is a 400 naming it: DRF would read an
    empty form value of an optional field as a missing one, and silently drop the filter."""

    def to_internal_value(self, data):
        empty = {name: ["Empty: give it a value, or leave the parameter out."]
                 for name in self.fields if name in data and data[name] == ""}
        if empty:
            raise serializers.ValidationError(empty)
        return super().to_internal_value(data)


@extend_schema_field({"oneOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}]})
class DayOrTimeField(serializers.DateTimeField):
    """An ISO 8601 time, or a bare day (YYYY-MM-DD, UTC): its start or, with ``whole_day``, the
    next day's start, so that an end day is included."""

    def __init__(self, *, whole_day: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.whole_day = whole_day

    def to_internal_value(self, value):
        if isinstance(value, str) and DAY.fullmatch(value):
            try:
                start = datetime.combine(date.fromisoformat(value), time.min, tzinfo=UTC)
            except ValueError:
                self.fail("invalid", format="YYYY-MM-DD or an ISO 8601 time")
            return start + timedelta(days=1) if self.whole_day else start
        return super().to_internal_value(value)


class UsageFilterSerializer(QuerySerializer, AttributionQuerySerializer):
    start = DayOrTimeField(required=False, help_text="From this time, or day (UTC), on.")
    end = DayOrTimeField(required=False, whole_day=True,
                         help_text="Before this time; a day (UTC) alone includes that whole day.")
    model = serializers.CharField(required=False, help_text="Only this public model id.")
    key = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID,
                                   help_text="Only the key with this id.")

    def validate(self, attrs):
        if "start" in attrs and "end" in attrs and attrs["start"] >= attrs["end"]:
            raise serializers.ValidationError({"end": ["end must come after start."]})
        return attrs


class PageQuerySerializer(QuerySerializer):
    """The usage records' paging parameters (described in the schema by views.usage.UsagePages)."""

    cursor = serializers.CharField(required=False)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=MAX_PAGE_SIZE)


class SummaryQuerySerializer(QuerySerializer, AttributionQuerySerializer,
                             GroupByQuerySerializer):
    days = serializers.IntegerField(required=False, default=30, min_value=1, max_value=366,
                                    help_text="How many days back the daily rows go, today included.")
    split = serializers.ChoiceField(choices=SPLITS, required=False,
                                    help_text="One row per day and model or key; left out, one row per day.")


class DayUsageSerializer(serializers.Serializer):
    day = serializers.DateField()
    split = serializers.CharField(help_text="The model id or key name of this row; '' without a split.")
    requests = serializers.IntegerField()
    errors = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cost = serializers.DecimalField(**MONEY)


class ModelUsageSerializer(serializers.Serializer):
    model = serializers.CharField()
    requests = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cost = serializers.DecimalField(**MONEY)


class MonthUsageSerializer(serializers.Serializer):
    month = serializers.DateField(help_text="The month's first day (UTC).")
    requests = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cost = serializers.DecimalField(**MONEY, help_text="Settled spend this month, USD.")
    reserved = serializers.DecimalField(**MONEY, help_text="Held by requests in flight, USD.")
    spend_limit = serializers.DecimalField(**PLAN_MONEY, allow_null=True,
                                           help_text="The plan's monthly cap; null = none.")
    by_model = ModelUsageSerializer(many=True)


class UsageSummarySerializer(serializers.Serializer):
    month = MonthUsageSerializer()
    daily = DayUsageSerializer(many=True)
    groups = GroupUsageSerializer(many=True, help_text="With group_by: the window's totals per end user or "
                                                       "tag value, by cost, the 1,000 largest; else empty.")
