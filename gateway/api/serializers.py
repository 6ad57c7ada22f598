"""What the management API reads and writes. Money is a string (exact decimal USD); times are
ISO 8601 in UTC."""

from decimal import Decimal
from fnmatch import fnmatchcase

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.alert_models import AlertDelivery, BudgetPeriod
from billing.spend_budgets import standings
from caching.policy import ttl_too_long
from gateway.models import KEY_SCOPES, ApiKey, Invitation, Membership, Role, default_key_scopes

MONEY = {"max_digits": 20, "decimal_places": 10}
PLAN_MONEY = {"max_digits": 12, "decimal_places": 2}


class TenantSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices,
                                   help_text="The caller's role; a management key acts as admin.")


def key_status(api_key: ApiKey) -> str:
    if api_key.revoked_at is not None:
        return "revoked"
    if api_key.expires_at is not None and api_key.expires_at <= timezone.now():
        return "expired"
    return "active"


class BudgetSerializer(serializers.Serializer):
    """A budget (per API key or end user) as set."""

    amount = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=Decimal("0.01"),
                                      help_text="USD per period, e.g. \"5.00\".")
    period = serializers.ChoiceField(choices=BudgetPeriod.choices,
                                     help_text="day, week (from Monday) or month, in UTC.")


class BudgetStandingSerializer(BudgetSerializer):
    """A budget and its current period: what settled, what requests in flight hold, what is left."""

    spent = serializers.DecimalField(**MONEY, read_only=True, help_text="Settled this period, USD.")
    held = serializers.DecimalField(**MONEY, read_only=True, help_text="Held by requests in flight, USD.")
    remaining = serializers.DecimalField(**MONEY, read_only=True, help_text="What this period has left, USD.")
    period_start = serializers.DateTimeField(read_only=True)
    resets_at = serializers.DateTimeField(read_only=True, help_text="When the next period starts.")


def standing_body(standing) -> dict:
    budget = standing.budget
    return {"amount": budget.amount, "period": budget.period, "spent": standing.spent, "held": standing.held,
            "remaining": standing.remaining, "period_start": standing.period_start,
            "resets_at": standing.resets_at}


class ApiKeySerializer(serializers.ModelSerializer):
    prefix = serializers.CharField(source="display_prefix",
                                   help_text="The key's visible start, e.g. 'tg-1a2b3c4d5e6f-…'.")
    status = serializers.SerializerMethodField()
    created_by = serializers.SerializerMethodField()
    budget = serializers.SerializerMethodField()

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "status", "scopes", "allowed_models", "created_by", "created_at",
                  "last_used_at", "expires_at", "revoked_at", "tokens_per_minute", "max_concurrent_requests",
                  "budget"]
        read_only_fields = fields

    @extend_schema_field(BudgetStandingSerializer(allow_null=True))
    def get_budget(self, api_key: ApiKey) -> dict | None:
        """The key's budget and its current period; null without one (PATCH keys/<id>/ sets it)."""
        budget = getattr(api_key, "spend_budget", None)
        if budget is None:
            return None
        return BudgetStandingSerializer(standing_body(standings([budget])[0])).data

    def get_status(self, api_key: ApiKey) -> str:
        return key_status(api_key)

    def get_created_by(self, api_key: ApiKey) -> str | None:
        return api_key.created_by.email if api_key.created_by else None


class IssuedKeySerializer(ApiKeySerializer):
    key = serializers.CharField(help_text="The raw key: shown in this answer only, never again.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields


class TimeField(serializers.DateTimeField):
    """An ISO 8601 time; an empty string is refused as such, not as a time of the wrong format."""

    default_error_messages = {"empty": "Empty: send a time (ISO 8601), or null or nothing for none."}

    def to_internal_value(self, value):
        if value == "":
            self.fail("empty")
        return super().to_internal_value(value)


def key_rate_limit(what: str) -> serializers.IntegerField:
    return serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=2**31 - 1,
        help_text=f"{what} for this key; null or left out = the plan's. The lower of the key's and the plan's "
                  "applies.")


class KeyRateLimitsSerializer(serializers.Serializer):
    """A key's own rate limits (gateway.api_keys.KEY_RATE_LIMITS): what a PATCH of a key changes."""

    tokens_per_minute = key_rate_limit("Tokens (prompt and output) per minute")
    max_concurrent_requests = key_rate_limit("Requests in flight at once (a stream until it ends)")


class KeyUpdateSerializer(KeyRateLimitsSerializer):
    """What a PATCH of a key changes: its rate limits, and its budget."""

    budget = BudgetSerializer(allow_null=True, required=False,
                              help_text="The key's budget: an amount per period; null removes it; left out, unchanged.")


class KeyRequestSerializer(KeyRateLimitsSerializer):
    """A new key. ``context["model_ids"]`` holds the public ids of the models the plan allows."""

    name = serializers.CharField(max_length=100)
    expires_at = TimeField(required=False, allow_null=True,
                           help_text="When the key stops working (ISO 8601); null or left out = never. An empty "
                                     "string is refused.")
    allowed_models = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, default=list,
        help_text="Model ids or patterns like 'openai/*' this key may call; empty = every model the plan allows.")
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=KEY_SCOPES), required=False, default=default_key_scopes,
        allow_empty=False,
        help_text="'inference' calls /v1; 'management' calls /api/ as an admin (only owners and admins grant it).")

    def validate_expires_at(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("That time is past: choose a later one, or send null for none.")
        return value

    def validate_allowed_models(self, patterns: list[str]) -> list[str]:
        patterns = list(dict.fromkeys(p.strip() for p in patterns if p.strip()))
        model_ids = self.context["model_ids"]
        unmatched = [p for p in patterns if not any(fnmatchcase(m, p) for m in model_ids)]
        if unmatched:
            raise serializers.ValidationError(
                f"No model on your plan matches {', '.join(unmatched)}. GET /v1/models lists the ids.")
        return patterns

    def validate_scopes(self, scopes: list[str]) -> list[str]:
        return [scope for scope in KEY_SCOPES if scope in scopes]


class MemberSerializer(serializers.ModelSerializer):
    email = serializers.EmailField(source="user.email")
    name = serializers.SerializerMethodField()
    joined_at = serializers.DateTimeField(source="created_at")

    class Meta:
        model = Membership
        fields = ["id", "email", "name", "role", "joined_at"]
        read_only_fields = fields

    def get_name(self, membership: Membership) -> str:
        return membership.user.get_full_name()


class RoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices, help_text="The new role; left out, nothing changes.")


class InvitationSerializer(serializers.ModelSerializer):
    invited_by = serializers.SerializerMethodField()

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "invited_by", "created_at", "expires_at"]
        read_only_fields = fields

    def get_invited_by(self, invitation: Invitation) -> str | None:
        return invitation.invited_by.email if invitation.invited_by else None


class InviteSerializer(serializers.Serializer):
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)


class PlanSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    monthly_price = serializers.DecimalField(**PLAN_MONEY)
    requests_per_minute = serializers.IntegerField()
    tokens_per_minute = serializers.IntegerField(allow_null=True, help_text="Per API key; null = no limit.")
    max_concurrent_requests = serializers.IntegerField(allow_null=True, help_text="Per API key; null = no limit.")
    monthly_spend_limit = serializers.DecimalField(**PLAN_MONEY, allow_null=True)
    allowed_capabilities = serializers.ListField(child=serializers.CharField())
    allowed_models = serializers.ListField(child=serializers.CharField())
    allowed_model_groups = serializers.ListField(child=serializers.CharField())
    max_keys = serializers.IntegerField()
    max_members = serializers.IntegerField()
    images_per_month = serializers.IntegerField(allow_null=True)
    video_seconds_per_month = serializers.IntegerField(allow_null=True)
    speech_characters_per_month = serializers.IntegerField(allow_null=True)
    transcription_minutes_per_month = serializers.IntegerField(allow_null=True)
    allows_overage = serializers.BooleanField()
    included_monthly_spend = serializers.DecimalField(**PLAN_MONEY)


class SubscriptionSerializer(serializers.Serializer):
    status = serializers.CharField()
    current_period_end = serializers.DateTimeField(allow_null=True)
    cancel_at_period_end = serializers.BooleanField()
    past_due_since = serializers.DateTimeField(allow_null=True)
    grace_ends = serializers.DateTimeField(allow_null=True, help_text="When a past-due tenant drops to Free.")


class PlanUseSerializer(serializers.Serializer):
    month = serializers.DateField()
    requests = serializers.IntegerField()
    spend = serializers.DecimalField(**MONEY, help_text="Settled spend this month, USD.")
    reserved = serializers.DecimalField(**MONEY)
    spend_remaining = serializers.DecimalField(**MONEY, allow_null=True,
                                               help_text="What the cap leaves this month; null without a cap.")
    active_keys = serializers.IntegerField()
    members = serializers.IntegerField()


class PlanStatusSerializer(serializers.Serializer):
    plan = PlanSerializer()
    subscription = SubscriptionSerializer()
    usage = PlanUseSerializer()


class CheckoutSerializer(serializers.Serializer):
    plan = serializers.SlugField(help_text="The slug of the plan to subscribe to.")


class RedirectSerializer(serializers.Serializer):
    url = serializers.URLField(help_text="Send the user's browser here (Stripe).")


class AlertSettingsSerializer(serializers.Serializer):
    thresholds = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=100), max_length=10,
        help_text="Percentages of each budget (the monthly spend cap) that send an alert; empty = no alerts.")
    webhook_url = serializers.CharField(
        max_length=500, allow_blank=True,
        help_text="The https URL on the public internet signed events are POSTed to; empty = mail only.")
    webhook_secret_hint = serializers.CharField(
        read_only=True, help_text="The signing secret's last 4 characters; empty before there is one.")


class AlertSettingsUpdateSerializer(AlertSettingsSerializer):
    thresholds = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=100), max_length=10,
                                       required=False, help_text="Left out, unchanged.")
    webhook_url = serializers.CharField(max_length=500, allow_blank=True, required=False,
                                        help_text="Left out, unchanged; empty removes the webhook.")


class SavedAlertSettingsSerializer(AlertSettingsSerializer):
    webhook_secret = serializers.CharField(
        required=False, help_text="The raw signing secret: only in the answer that made it, never again.")


class WebhookSecretSerializer(serializers.Serializer):
    webhook_secret = serializers.CharField(help_text="The new raw signing secret: shown in this answer only.")


class AlertDeliverySerializer(serializers.ModelSerializer):
    threshold = serializers.SerializerMethodField()

    class Meta:
        model = AlertDelivery
        fields = ["id", "event_id", "event_type", "threshold", "channel", "status", "attempts", "response_status",
                  "error", "url", "created_at", "last_attempt_at", "next_attempt_at", "redelivery_of"]
        read_only_fields = fields

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_threshold(self, delivery: AlertDelivery) -> int | None:
        return delivery.alert.threshold if delivery.alert_id else None


# --- the answer cache (gateway/api/views/cache.py) -------------------------------------------------

class StrictBooleanField(serializers.BooleanField):
    """true or false, not 0, 1 or "yes" (JSON has booleans)."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer, not "60" or 60.0."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class CacheStatsSerializer(serializers.Serializer):
    days = serializers.IntegerField(help_text="The window: the last this many UTC days, today included.")
    hits = serializers.IntegerField(help_text="Requests answered from the cache.")
    misses = serializers.IntegerField(help_text="Requests looked up and not found (answered by the provider).")
    hit_rate = serializers.FloatField(allow_null=True, help_text="hits / (hits + misses); null before any lookup.")
    saved = serializers.DecimalField(**MONEY, help_text="What the hits would have cost, less their cache price, USD.")


class CacheSettingsSerializer(serializers.Serializer):
    available = serializers.BooleanField(read_only=True, help_text="The plan offers the cache.")
    semantic_available = serializers.BooleanField(read_only=True, help_text="The plan offers semantic matching.")
    hit_price = serializers.DecimalField(max_digits=10, decimal_places=6, read_only=True,
                                         help_text="USD billed per request answered from the cache.")
    enabled = StrictBooleanField(help_text="Answer repeated requests of every key from the cache (a key "
                                                 "may say otherwise: keys/<id>/cache/).")
    ttl_seconds = StrictIntegerField(min_value=1, help_text="How long an answer is served; a request's "
                                                                  "x-tollgate-cache-ttl overrides it.")
    any_temperature = StrictBooleanField(help_text="Cache every request, not only deterministic ones "
                                                         "(temperature 0 or a seed).")
    semantic = StrictBooleanField(help_text="Also answer requests whose last user message means nearly the "
                                                  "same (with the plan's semantic cache).")
    stats = CacheStatsSerializer(read_only=True)


class CacheSettingsUpdateSerializer(serializers.Serializer):
    enabled = StrictBooleanField(required=False, help_text="Left out, unchanged.")
    ttl_seconds = StrictIntegerField(min_value=1, required=False, help_text="Left out, unchanged.")
    any_temperature = StrictBooleanField(required=False, help_text="Left out, unchanged.")
    semantic = StrictBooleanField(required=False, help_text="Left out, unchanged.")

    def validate_ttl_seconds(self, ttl: int) -> int:
        if problem := ttl_too_long(ttl):
            raise serializers.ValidationError(problem)
        return ttl


class KeyCacheSerializer(serializers.Serializer):
    key_id = serializers.IntegerField(read_only=True)
    mode = serializers.ChoiceField(choices=["tenant", "on", "off"],
                                   help_text="'tenant': as the tenant's setting; 'on' or 'off': the key's own.")


# --- end users' budgets (gateway/api/views/budgets.py) ----------------------------------------------

class EndUserBudgetSerializer(BudgetStandingSerializer):
    id = serializers.IntegerField(read_only=True)
    end_user = serializers.CharField(read_only=True, help_text="The id requests send as 'user' or x-tollgate-user.")
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)


class EndUserBudgetRequestSerializer(BudgetSerializer):
    end_user = serializers.CharField(max_length=256, help_text="The id requests send as 'user' or x-tollgate-user.")


class EndUserBudgetUpdateSerializer(serializers.Serializer):
    amount = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=Decimal("0.01"), required=False,
                                      help_text="USD per period; left out, unchanged.")
    period = serializers.ChoiceField(choices=BudgetPeriod.choices, required=False, help_text="Left out, unchanged.")
