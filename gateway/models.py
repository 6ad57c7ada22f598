from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from providers import encryption

slug_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9-]{0,62}$",
    "Use 1-63 lowercase letters, digits or dashes, starting with a letter or digit.",
)


class Tenant(models.Model):
    """An organization: owns members, API keys, a subscription and usage."""

    slug = models.CharField(max_length=63, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"
    BILLING = "billing", "Billing"


# The role sets the rules name (dashboard, management API, tenancy workflows): written once here.
EVERYONE = frozenset(Role)
MANAGERS = frozenset({Role.OWNER, Role.ADMIN})  # manage keys and members; may grant 'management'
TEAM = frozenset({Role.OWNER, Role.ADMIN, Role.MEMBER})
BILLING_MANAGERS = frozenset({Role.OWNER, Role.BILLING})
ALERT_MANAGERS = frozenset({Role.OWNER, Role.ADMIN, Role.BILLING})  # set spend alerts and their webhook


class Membership(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="one_membership_per_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} ({self.role})"


KEY_SCOPES = ["inference", "management"]
MANAGEMENT_SCOPE = "management"  # /api/; only owners and admins grant it, and only their keys keep it


def default_key_scopes() -> list[str]:
    return ["inference"]


class ApiKey(models.Model):
    """A tenant's API key. The raw key is shown once; we keep a lookup prefix and a keyed hash.

    Raw keys look like ``tg-<prefix>-<secret>``; ``prefix`` finds the row with one indexed
    lookup and ``hashed`` (HMAC-SHA256 with API_KEY_PEPPER) proves the secret.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    hashed = models.CharField(max_length=64, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    allowed_models = models.JSONField(
        default=list,
        blank=True,
        help_text="Public model ids or patterns like 'openai/*' this key may call; empty = all the plan allows.",
    )
    scopes = models.JSONField(
        default=default_key_scopes,
        blank=True,
        help_text=f"What the key may do, of {KEY_SCOPES}: 'inference' calls /v1, 'management' calls /api/.",
    )
    # The key's own rate limits; of the key's and its plan's, the lower applies (billing.rate_limits).
    tokens_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Tokens per minute for this key; empty = the plan's.")
    max_concurrent_requests = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests in flight at once for this key; empty = the plan's.")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.display_prefix})"

    @property
    def display_prefix(self) -> str:
        return f"tg-{self.prefix}-…"


class TenantProviderKey(models.Model):
    """A tenant's own key for a provider (bring your own key), encrypted like our credentials.

    Calls to that provider's models are then made with it and billed the plan's BYOK fee
    instead of the provider price."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="provider_keys")
    provider = models.CharField(max_length=64, help_text="Provider slug, e.g. 'openai'.")
    secret_encrypted = models.TextField(editable=False)
    hint = models.CharField(max_length=16, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "provider"], name="one_key_per_tenant_provider")]

    def __str__(self) -> str:
        return f"{self.tenant} {self.provider} (…{self.hint})"

    def set_secret(self, raw: str) -> None:
        self.secret_encrypted = encryption.encrypt(raw)
        self.hint = raw[-4:]

    def get_secret(self) -> str:
        return encryption.decrypt(self.secret_encrypted)


class Invitation(models.Model):
    """An invitation to join a tenant with a role, sent by email; accepted once, by link.

    The link carries a random token; we keep only its SHA-256 hash."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} to {self.tenant} ({self.role})"


class Lease(models.Model):
    """A periodic job's claim (gateway/leases.py): who runs it now, until when, and when it last
    started. One row per job; taken by one conditional UPDATE, so one process runs it per period."""

    name = models.CharField(max_length=64, primary_key=True)
    holder = models.CharField(max_length=200)
    expires_at = models.DateTimeField()
    last_run_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.name
