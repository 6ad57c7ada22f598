"""Who a request was for: usage records narrowed to an end user and tags, and totals grouped by
either. The management API, the usage pages and the CSV export all read them through here.

    parse_tag("team=search") -> ("team", "search")     the one syntax of a tag filter
    Attribution(end_user=, tags=).narrow(records)      only the requests for that user, with every tag
    tag_keys(records)                                  the keys its latest tagged records carry
    parse_group_by("user" | "tag:team") -> Grouping    what to total by
    group_rows(records, grouping)                      totals per user or tag value, by cost, highest first
    group_totals(records, grouping, limit=)            the same, as a list

A record's end user is the client's ``user`` (or x-tollgate-user), its tags the ``metadata``
object (or x-tollgate-tags): the client's own words, never a proof of anything.
"""

import json
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, DecimalField, F, Func, Q, QuerySet, Sum, TextField, Value
from django.db.models.functions import Coalesce
from django.db.models.lookups import Exact

from usage.models import Outcome, UsageRecord

TAG_SYNTAX = "key=value"  # as in x-tollgate-tags: the key is everything before the first '='
GROUP_BY_USER = "user"
GROUP_BY_TAG = "tag:"  # then the tag's key: "tag:team"
GROUP_BY_SYNTAX = f"'{GROUP_BY_USER}' or '{GROUP_BY_TAG}<key>'"
MAX_USER_CHARS = UsageRecord._meta.get_field("end_user").max_length
MAX_TAGS = 16  # a record's tags, from metadata and x-tollgate-tags together (OpenAI's bound on metadata)
MONEY = DecimalField(max_digits=20, decimal_places=10)


def refuse_nul(text: str) -> None:
    """A NUL character is in no stored user or tag (and PostgreSQL text cannot hold one)."""
    if "\x00" in text:
        raise ValueError("A user, tag or grouping may not contain a NUL character.")


def parse_tag(text: str) -> tuple[str, str]:
    """``"team=search"`` as ``("team", "search")`` (both stripped, as x-tollgate-tags records
    them; the value may be empty). ValueError without a '=' or a key before it."""
    refuse_nul(text)
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"'{text}' is not a tag: give one as {TAG_SYNTAX}, e.g. team=search.")
    return key.strip(), value.strip()


class TagValue(Func):
    """A record's value of one tag, as text (NULL where the record lacks it). Not Django's
    KeyTextTransform: that reads a key of digits ("2024") as an index into an array. (SQLite's
    JSON path cannot quote a '"': a key holding one never matches there.)"""

    output_field = TextField()

    def __init__(self, key: str):
        super().__init__(F("tags"))
        self.key = key

    def as_sql(self, compiler, connection, **extra):  # SQLite: its JSON path quotes the key
        tags, params = compiler.compile(self.source_expressions[0])
        return f"JSON_EXTRACT({tags}, %s)", (*params, "$." + json.dumps(self.key))

    def as_postgresql(self, compiler, connection, **extra):
        tags, params = compiler.compile(self.source_expressions[0])
        return f"({tags} ->> %s)", (*params, self.key)


@dataclass(frozen=True, slots=True)
class Attribution:
    """Whose requests to count: those for ``end_user`` (None: anyone's, "" included) that carry
    every one of ``tags`` (key, value). The empty one narrows nothing."""

    end_user: str | None = None
    tags: tuple[tuple[str, str], ...] = ()

    def __bool__(self) -> bool:
        return self.end_user is not None or bool(self.tags)

    def narrow(self, records: QuerySet) -> QuerySet:
        # By (tenant, end_user): the index; a tag is read out of each of the tenant's records.
        if self.end_user is not None:
            records = records.filter(end_user=self.end_user)
        for key, value in self.tags:
            records = records.filter(Exact(TagValue(key), value))
        return records


ANYONE = Attribution()


def tag_keys(records: QuerySet, *, sample: int = 500) -> list[str]:
    """The tag keys of the latest ``sample`` tagged ones of ``records``, sorted: what a page offers
    to group by (every key of every record would cost a scan of them all)."""
    keys: set[str] = set()
    for tags in records.exclude(tags={}).values_list("tags", flat=True)[:sample]:
        keys.update(tags)
    return sorted(keys)


@dataclass(frozen=True, slots=True)
class Grouping:
    """Totals by end user (``tag_key`` None) or by the value of one tag."""

    tag_key: str | None = None

    @property
    def expression(self):
        # "" for requests that named no user or lack the tag: one group, not a NULL.
        if self.tag_key is None:
            return F("end_user")
        return Coalesce(TagValue(self.tag_key), Value(""), output_field=TextField())


BY_USER = Grouping()


def parse_group_by(text: str) -> Grouping:
    """``"user"`` or ``"tag:<key>"`` (the key as given, not stripped). ValueError otherwise."""
    refuse_nul(text)
    if text == GROUP_BY_USER:
        return BY_USER
    if text.startswith(GROUP_BY_TAG) and len(text) > len(GROUP_BY_TAG):
        return Grouping(tag_key=text[len(GROUP_BY_TAG):])
    raise ValueError(f"'{text}' is no grouping: give {GROUP_BY_SYNTAX}, e.g. tag:team.")


def group_rows(records: QuerySet, grouping: Grouping) -> QuerySet:
    """``records`` totalled per group, as the database counts them (rows to read with group_of),
    by cost, then requests (highest first), then value."""
    return (
        records.order_by().annotate(group_value=grouping.expression).values("group_value")
        .annotate(total_requests=Count("id"), total_errors=Count("id", filter=Q(outcome=Outcome.ERROR)),
                  total_input=Coalesce(Sum("input_tokens"), Value(0)),
                  total_output=Coalesce(Sum("output_tokens"), Value(0)),
                  total_cost=Coalesce(Sum("cost"), Value(Decimal(0)), output_field=MONEY))
        .order_by("-total_cost", "-total_requests", "group_value")
    )


def group_of(row: dict) -> dict:
    """A row of group_rows as ``{"value", "requests", "errors", "input_tokens", "output_tokens", "cost"}``."""
    return {"value": row["group_value"], "requests": row["total_requests"], "errors": row["total_errors"],
            "input_tokens": row["total_input"], "output_tokens": row["total_output"], "cost": row["total_cost"]}


def group_totals(records: QuerySet, grouping: Grouping, *, limit: int | None = None) -> list[dict]:
    """group_rows read with group_of, the first ``limit`` only (cut by the database)."""
    rows = group_rows(records, grouping)
    return [group_of(row) for row in (rows if limit is None else rows[:limit])]
