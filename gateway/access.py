"""get_<thing>_for_...: the only way views and consumers load tenant data.

Each returns only what the given user may see; an outsider gets DoesNotExist, never another
tenant's row.
"""

import uuid

from billing.models import (
    AlertDelivery,
    AlertSettings,
    CreditAccount,
    CreditEntry,
    PlanChange,
    SpendBudget,
    Subscription,
    SubscriptionStatus,
)
from caching.models import KeyCache, TenantCache
from gateway.models import ApiKey, Invitation, Membership, Tenant, TenantProviderKey
from media.models import MediaFile, VideoJob
from usage.models import UsageRecord


def get_membership_for_user(user, tenant_slug: str) -> Membership:
    if not user.is_authenticated:
        raise Membership.DoesNotExist("not signed in")
    return Membership.objects.select_related("tenant").get(user=user, tenant__slug=tenant_slug)


def get_memberships_for_user(user) -> list[Membership]:
    """Every tenant the user belongs to, by tenant name (the tenant switcher)."""
    if not user.is_authenticated:
        return []
    return list(Membership.objects.filter(user=user).select_related("tenant").order_by("tenant__name", "tenant__slug"))


def get_members_for_tenant(tenant) -> list[Membership]:
    return list(Membership.objects.filter(tenant=tenant).select_related("user").order_by("created_at", "pk"))


def get_member_for_tenant(tenant, membership_id: int) -> Membership:
    """One of the tenant's memberships; another tenant's id raises Membership.DoesNotExist."""
    return Membership.objects.select_related("user").get(tenant=tenant, pk=membership_id)


def count_members_for_tenant(tenant) -> int:
    return Membership.objects.filter(tenant=tenant).count()


def get_pending_invitations_for_tenant(tenant) -> list[Invitation]:
    return list(Invitation.objects.filter(tenant=tenant, accepted_at__isnull=True, revoked_at__isnull=True)
                .select_related("invited_by").order_by("-created_at"))


def get_api_keys_for_tenant(tenant) -> list[ApiKey]:
    """The tenant's keys, with their creators and budgets (``spend_budget``, when they have one)."""
    return list(ApiKey.objects.filter(tenant=tenant).select_related("created_by", "spend_budget"))


def count_active_api_keys_for_tenant(tenant) -> int:
    return ApiKey.objects.filter(tenant=tenant, revoked_at__isnull=True).count()


def get_api_key_for_tenant(tenant, key_id: int) -> ApiKey:
    """One of the tenant's keys; another tenant's id raises ApiKey.DoesNotExist."""
    return ApiKey.objects.select_related("created_by", "spend_budget").get(tenant=tenant, pk=key_id)


def get_tenant_for_api_key(api_key: ApiKey, tenant_slug: str) -> Tenant:
    """The key's own tenant, if that is the one named; any other slug raises Tenant.DoesNotExist."""
    if api_key.tenant.slug != tenant_slug:
        raise Tenant.DoesNotExist(f"no tenant {tenant_slug!r} for this key")
    return api_key.tenant


def get_usage_records_for_tenant(tenant):
    """The tenant's usage records, newest first, with their keys (a QuerySet, to filter and page)."""
    return UsageRecord.objects.filter(tenant=tenant).select_related("api_key").order_by("-created_at", "-pk")


def get_subscription_for_tenant(tenant) -> Subscription:
    return Subscription.objects.select_related("plan").get(tenant=tenant)


def is_tenant_past_due(tenant) -> bool:
    return Subscription.objects.filter(tenant=tenant, status=SubscriptionStatus.PAST_DUE).exists()


def get_plan_changes_for_tenant(tenant, *, limit: int) -> list[PlanChange]:
    """The tenant's latest plan changes, newest first."""
    return list(PlanChange.objects.filter(tenant=tenant).select_related("from_plan", "to_plan")[:limit])


def get_credit_account_for_tenant(tenant) -> CreditAccount | None:
    """The tenant's credit balance and auto top-up settings; None before it ever had credits."""
    return CreditAccount.objects.filter(tenant=tenant).first()


def get_credit_entries_for_tenant(tenant, *, limit: int) -> list[CreditEntry]:
    """The tenant's latest credit ledger entries, newest first."""
    return list(CreditEntry.objects.filter(tenant=tenant).order_by("-created_at", "-pk")[:limit])


def get_provider_keys_for_tenant(tenant) -> list[TenantProviderKey]:
    """The tenant's own (BYOK) provider keys, stored encrypted."""
    return list(TenantProviderKey.objects.filter(tenant=tenant))


def get_media_file_for_tenant(tenant_id: int, file_id: str) -> MediaFile:
    """One of the tenant's generated files; another tenant's id, or no such id, raises
    MediaFile.DoesNotExist."""
    try:
        return MediaFile.objects.get(tenant_id=tenant_id, pk=uuid.UUID(file_id))
    except ValueError:
        raise MediaFile.DoesNotExist(file_id) from None


def get_video_job_for_tenant(tenant_id: int, job_id: str) -> VideoJob:
    """One of the tenant's video jobs; another tenant's id raises VideoJob.DoesNotExist."""
    return VideoJob.objects.get(tenant_id=tenant_id, pk=job_id)


def get_video_jobs_for_tenant(tenant_id: int):
    """The tenant's video jobs (a QuerySet, to order and page)."""
    return VideoJob.objects.filter(tenant_id=tenant_id)


def get_cache_settings_for_tenant(tenant) -> TenantCache:
    """The tenant's answer-cache settings (unsaved defaults, caching off, when it has none)."""
    return TenantCache.objects.filter(tenant=tenant).first() or TenantCache(tenant=tenant)


def get_key_cache_switches_for_tenant(tenant) -> dict[int, bool]:
    """Key id -> the key's own cache switch, for the tenant's keys that have one."""
    return dict(KeyCache.objects.filter(api_key__tenant=tenant).values_list("api_key_id", "enabled"))


def get_alert_settings_for_tenant(tenant) -> AlertSettings:
    """The tenant's spend-alert settings (unsaved defaults, 50/80/100 % and no webhook, when it has none)."""
    return AlertSettings.objects.filter(tenant=tenant).first() or AlertSettings(tenant=tenant)


def get_alert_deliveries_for_tenant(tenant, *, limit: int) -> list[AlertDelivery]:
    """The tenant's latest alert deliveries (mails and webhooks), newest first."""
    deliveries = AlertDelivery.objects.filter(tenant=tenant).select_related("alert")
    return list(deliveries.order_by("-created_at", "-pk")[:limit])


def get_alert_delivery_for_tenant(tenant, delivery_id: int) -> AlertDelivery:
    """One of the tenant's deliveries; another tenant's id raises AlertDelivery.DoesNotExist."""
    return AlertDelivery.objects.get(tenant=tenant, pk=delivery_id)


def get_end_user_budgets_for_tenant(tenant) -> list[SpendBudget]:
    """The tenant's budgets per end user, by end user."""
    return list(SpendBudget.objects.filter(tenant=tenant, scope="end_user").order_by("subject", "pk"))


def get_end_user_budget_for_tenant(tenant, budget_id: int) -> SpendBudget:
    """One of the tenant's end-user budgets; another tenant's id raises SpendBudget.DoesNotExist."""
    return SpendBudget.objects.get(tenant=tenant, scope="end_user", pk=budget_id)
