"""Who a request was for, in the management API: the ``user`` and ``tag`` filters of the usage
records and summary, the summary's ``group_by``, and the rows it groups into."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from usage.attribution import (
    GROUP_BY_SYNTAX,
    MAX_USER_CHARS,
    TAG_SYNTAX,
    Attribution,
    Grouping,
    parse_group_by,
    parse_tag,
)

MONEY = {"max_digits": 20, "decimal_places": 10}


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
