"""Who calls the management API: a signed-in user (session, CSRF checked on writes) or a tenant
API key with the 'management' scope sent as ``Authorization: Bearer tg-...``.

A key is read from the database on every call (no cache): management calls are rare, and a
key revoked or stripped of its scope stops working at once in every worker. A key acts as an
admin while the member who created it is an owner or admin of the key's tenant; once that member
is demoted below admin or gone, the key is refused (401). A key nobody created (an operator's,
from manage.py create_api_key) acts as an admin.
"""

import hmac
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from gateway.access import get_membership_for_user
from gateway.api.permissions import MANAGERS
from gateway.api_keys import KEY_PREFIX, LAST_USED_RESOLUTION, hash_key
from gateway.models import MANAGEMENT_SCOPE, ApiKey, Membership, Role


@dataclass(frozen=True, slots=True)
class KeyPrincipal:
    """request.user when a management key authenticated: no person, one tenant (request.auth)."""

    api_key: ApiKey
    role: str = Role.ADMIN
    is_authenticated: bool = True
    is_anonymous: bool = False
    is_active: bool = True
    pk: None = None

    def __str__(self) -> str:
        return f"API key {self.api_key.name} ({self.api_key.display_prefix})"


def find_management_key(raw: str) -> ApiKey:
    """The live key ``raw`` proves, holding the management scope; else AuthenticationFailed
    (401) or PermissionDenied (403) saying what to do."""
    parts = raw.split("-", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        raise exceptions.AuthenticationFailed("Incorrect API key provided: it is not a Tollgate key (they start "
                                              "with 'tg-').")
    api_key = ApiKey.objects.select_related("tenant", "created_by").filter(prefix=parts[1]).first()
    if api_key is None or not hmac.compare_digest(api_key.hashed, hash_key(raw)):
        raise exceptions.AuthenticationFailed("Incorrect API key provided.")
    if api_key.revoked_at is not None:
        raise exceptions.AuthenticationFailed(f"API key '{api_key.name}' has been revoked.")
    now = timezone.now()
    if api_key.expires_at is not None and api_key.expires_at <= now:
        raise exceptions.AuthenticationFailed(
            f"API key '{api_key.name}' expired at {api_key.expires_at:%Y-%m-%d %H:%M} UTC.")
    if MANAGEMENT_SCOPE not in (api_key.scopes or ()):
        raise exceptions.PermissionDenied(
            f"API key '{api_key.name}' may not call the management API: its scopes are "
            f"{', '.join(api_key.scopes or ()) or 'none'}. Create a key with the 'management' scope (an owner or "
            "admin can), or sign in.")
    return api_key


def note_use(api_key: ApiKey) -> None:
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)


def acting_role(api_key: ApiKey) -> str:
    """The role a management key acts with in its tenant: its creator's current rights, never
    more than admin. A creator no longer owner or admin there makes it AuthenticationFailed."""
    creator = api_key.created_by
    if creator is None:
        return Role.ADMIN
    try:
        membership = get_membership_for_user(creator, api_key.tenant.slug)
    except Membership.DoesNotExist:
        membership = None
    if membership is None or membership.role not in MANAGERS or not creator.is_active:
        raise exceptions.AuthenticationFailed(
            f"The member who created API key '{api_key.name}' no longer may manage {api_key.tenant.slug}, so the "
            "key may not either. Ask an owner or admin for a key of their own.")
    return Role.ADMIN


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer tg-...`` with a key of the 'management' scope."""

    def authenticate(self, request):
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        token = token.strip()
        if not token:
            raise exceptions.AuthenticationFailed("Empty bearer token: send 'Authorization: Bearer tg-...'.")
        api_key = find_management_key(token)
        principal = KeyPrincipal(api_key, role=acting_role(api_key))
        note_use(api_key)
        return principal, api_key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="tollgate"'


class SessionAuthentication(authentication.SessionAuthentication):
    """Django's session, with CSRF checked on writes, and a refusal that says what to send."""

    def enforce_csrf(self, request):
        try:
            super().enforce_csrf(request)
        except exceptions.PermissionDenied as exc:
            reason = str(exc.detail).removeprefix("CSRF Failed: ")
            raise exceptions.PermissionDenied(
                f"CSRF check failed: {reason} Signed-in writes must send the csrftoken cookie's value in the "
                "X-CSRFToken header; scripts can use an API key with the 'management' scope instead.") from exc


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema (and Swagger UI's Authorize button) describes the key."""

    target_class = ApiKeyAuthentication
    name = "managementKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "tg-<prefix>-<secret>",
                "description": "A tenant API key with the 'management' scope."}


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = SessionAuthentication
    name = "session"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME,
                "description": "A signed-in dashboard session; writes also send the X-CSRFToken header."}
