"""Which tenant a management call is about, who makes it, and what that role may do.

Every endpoint under /api/tenants/<slug>/ resolves an Actor first: a signed-in member of the
tenant, or a management key of that very tenant (it acts as an admin, on behalf of the member who
created it while that member is an owner or admin: gateway/api/authentication.py). Anyone else
gets 404, as if the tenant did not exist; a role that may not make the call gets 403 naming who may.

Roles (the dashboard's rules, gateway/dashboard/tenancy.py): owner and admin manage keys and
members; a member lists keys and members and creates and revokes its own keys; billing
manages billing; everyone reads usage and the plan. Only an owner or billing member starts
checkout or opens the billing portal, so a key (an admin) cannot. Owners, admins and billing
members (so a key too) set the spend alerts. Owners and admins set budgets (a key's, an end
user's); everyone reads them.
"""

from dataclasses import dataclass

from rest_framework import exceptions

from gateway.access import get_membership_for_user, get_tenant_for_api_key
from gateway.models import (
    ALERT_MANAGERS,
    BILLING_MANAGERS,
    EVERYONE,
    MANAGERS,
    TEAM,
    ApiKey,
    Membership,
    Role,
    Tenant,
)

__all__ = ["ALERT_MANAGERS", "BILLING_MANAGERS", "EVERYONE", "MANAGERS", "TEAM"]  # the role sets, re-exported to the API's views


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes the call, in which tenant, with which role.

    It has the acting Membership's ``role``, ``user`` and ``pk``, so the membership workflows
    (gateway/dashboard/memberships.py, ``actor=``) take it as they take a Membership. A key's
    actor has no membership (``pk`` None); its ``user`` is the key's creator, so what it creates
    (keys, invitations) is theirs and ends with their rights; None for an operator's key.
    """

    tenant: Tenant
    role: str
    user: object | None = None
    pk: int | None = None
    api_key: ApiKey | None = None

    @property
    def label(self) -> str:
        return f"API key '{self.api_key.name}'" if self.api_key else "Your role"


def not_found(slug: str) -> exceptions.NotFound:
    return exceptions.NotFound(f"No tenant '{slug}' among yours. GET /api/tenants/ lists the tenants you can "
                               "manage.")


def resolve_actor(request, slug: str) -> Actor:
    if isinstance(request.auth, ApiKey):
        try:
            tenant = get_tenant_for_api_key(request.auth, slug)
        except Tenant.DoesNotExist as exc:
            raise not_found(slug) from exc
        return Actor(tenant=tenant, role=request.user.role, user=request.auth.created_by, api_key=request.auth)
    try:
        membership = get_membership_for_user(request.user, slug)
    except Membership.DoesNotExist as exc:
        raise not_found(slug) from exc
    return Actor(tenant=membership.tenant, role=membership.role, user=request.user, pk=membership.pk)


def role_names(roles: frozenset) -> str:
    labels = [role.label.lower() for role in Role if role in roles]
    return ", ".join(labels[:-1]) + f" or {labels[-1]}" if len(labels) > 1 else labels[0]


def require_role(actor: Actor, roles: frozenset, action: str) -> None:
    if actor.role not in roles:
        who = "acts as admin" if actor.api_key else f"in {actor.tenant.slug} is {actor.role}"
        raise exceptions.PermissionDenied(f"{actor.label} {who}: {action} is for {role_names(roles)} members.")


def can_manage_keys(actor: Actor) -> bool:
    return actor.role in MANAGERS


def can_revoke_key(actor: Actor, api_key: ApiKey) -> bool:
    """Managers revoke any key; a member only the keys it created."""
    if can_manage_keys(actor):
        return True
    return actor.role == Role.MEMBER and actor.user is not None and api_key.created_by_id == actor.user.pk
