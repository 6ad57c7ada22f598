"""Tenant workflows: each a named function in one transaction."""

from django.contrib.auth import get_user_model
from django.db import transaction

from billing.models import Plan, Subscription
from gateway.models import Membership, Role, Tenant


class TenantExists(Exception):
    pass


@transaction.atomic
def create_tenant(slug: str, *, name: str = "", plan: Plan, owner_email: str | None = None) -> Tenant:
    """A tenant, its subscription to ``plan`` and, given an email, its owner (created if new)."""
    if Tenant.objects.filter(slug=slug).exists():
        raise TenantExists(f"A tenant named '{slug}' already exists.")
    tenant = Tenant(slug=slug, name=name or slug)
    tenant.full_clean()
    tenant.save()
    Subscription.objects.create(tenant=tenant, plan=plan)
    if owner_email:
        User = get_user_model()
        user = User.objects.filter(email__iexact=owner_email).first()
        if user is None:
            user = User.objects.create_user(username=owner_email.lower(), email=owner_email.lower())
            user.set_unusable_password()
            user.save(update_fields=["password"])
        Membership.objects.create(tenant=tenant, user=user, role=Role.OWNER)
    return tenant
