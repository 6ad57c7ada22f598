"""A tenant's subscription: every change of plan or billing state, each a named function in a
transaction.

    change_plan(subscription, plan, ...)       the one place a plan changes: audit row + key cache
    apply_stripe_subscription(...)             make ours match Stripe's (re-fetched) subscription
    mark_past_due / restore / drop_to_free     the dunning states
    expire_grace_periods(now)                  past due for longer than the plan's grace -> Free
    start_checkout / open_portal               the tenant owner's way to Stripe

Limits take effect at once in this process: a plan change drops the API-key cache (which holds
each key's plan) when its transaction commits; other workers read the new plan within
KEY_CACHE_SECONDS.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from billing import credit_grants, stripe_api
from billing.models import Plan, PlanChange, PlanChangeReason, Subscription, SubscriptionStatus
from billing.stripe_api import RemoteSubscription

log = logging.getLogger(__name__)

# Called after a plan or status change commits. The gateway registers its key cache here (in
# GatewayConfig.ready): billing does not import the gateway.
after_change: list[Callable[[], None]] = []


def notify_change() -> None:
    for listener in after_change:
        listener()

FREE_PLAN_SLUG = "free"
# Stripe statuses that hold a paid plan; "incomplete" (first payment pending) changes nothing.
LIVE_STATUSES = {"active", "trialing", "past_due", "unpaid"}
ENDED_STATUSES = {"canceled", "incomplete_expired", "paused"}


class CheckoutRefused(Exception):
    """The tenant cannot start this checkout (the message says why and what to do)."""


def free_plan() -> Plan:
    return Plan.objects.get(slug=FREE_PLAN_SLUG)


def plan_for_prices(price_ids: tuple[str, ...]) -> Plan | None:
    """Our plan for a Stripe subscription's items (the metered overage item maps to none)."""
    return Plan.objects.filter(stripe_price_id__in=[p for p in price_ids if p]).first()


def lock_subscription(tenant_id: int) -> Subscription:
    return Subscription.objects.select_for_update().select_related("plan").get(tenant_id=tenant_id)


@transaction.atomic
def change_plan(subscription: Subscription, plan: Plan, *, reason: str, detail: str = "",
                stripe_event_id: str = "", actor=None) -> bool:
    """Put the tenant on ``plan``; an audit row when that is a change. True if it was."""
    if subscription.plan_id == plan.pk:
        return False
    PlanChange.objects.create(tenant_id=subscription.tenant_id, from_plan_id=subscription.plan_id, to_plan=plan,
                              reason=reason, detail=detail[:300], stripe_event_id=stripe_event_id, actor=actor)
    log.info("tenant %s: plan %s -> %s (%s)", subscription.tenant_id, subscription.plan_id, plan.slug, reason)
    subscription.plan = plan
    subscription.save(update_fields=["plan", "updated_at"])
    # After commit: a request reloading its key before then would cache the old plan again.
    transaction.on_commit(notify_change)
    if plan.monthly_credits > 0:  # the month's included credits at once, not at the next periodic run
        tenant_id = subscription.tenant_id
        transaction.on_commit(lambda: credit_grants.grant_monthly_credits(tenant_id=tenant_id))
    return True


def save_state(subscription: Subscription, **fields) -> None:
    changed = [name for name, value in fields.items() if getattr(subscription, name) != value]
    for name in changed:
        setattr(subscription, name, fields[name])
    if changed:
        subscription.save(update_fields=[*changed, "updated_at"])
        # The hot path refuses a canceled status from the key cache.
        transaction.on_commit(notify_change)


def grace_ends(subscription: Subscription, plan: Plan) -> datetime | None:
    if subscription.past_due_since is None:
        return None
    return subscription.past_due_since + timedelta(days=plan.grace_days)


@transaction.atomic
def mark_past_due(subscription: Subscription, paid_plan: Plan, *, now: datetime, stripe_event_id: str = "") -> None:
    """A payment failed: keep the paid plan through its grace period, then Free."""
    save_state(subscription, status=SubscriptionStatus.PAST_DUE,
               past_due_since=subscription.past_due_since or now)
    if now >= grace_ends(subscription, paid_plan):
        change_plan(subscription, free_plan(), reason=PlanChangeReason.GRACE_EXPIRED, stripe_event_id=stripe_event_id,
                    detail=f"past due since {subscription.past_due_since:%Y-%m-%d %H:%M} UTC; "
                           f"{paid_plan.name} allows {paid_plan.grace_days} days' grace")
    else:
        change_plan(subscription, paid_plan, reason=PlanChangeReason.STRIPE, stripe_event_id=stripe_event_id,
                    detail="Stripe subscription past due, within grace")


@transaction.atomic
def restore(subscription: Subscription, paid_plan: Plan, *, status: str, stripe_event_id: str = "") -> None:
    """Paid (again): the plan Stripe bills for, no banner."""
    save_state(subscription, status=status, past_due_since=None)
    change_plan(subscription, paid_plan, reason=PlanChangeReason.STRIPE, stripe_event_id=stripe_event_id,
                detail=f"Stripe subscription {subscription.stripe_subscription_id} {status}")


@transaction.atomic
def drop_to_free(subscription: Subscription, *, reason: str, detail: str, stripe_event_id: str = "",
                 keep_past_due: bool = False) -> None:
    """Free limits. ``keep_past_due``: money is still owed (Stripe gave up retrying: unpaid)."""
    if keep_past_due:
        save_state(subscription, status=SubscriptionStatus.PAST_DUE,
                   past_due_since=subscription.past_due_since or timezone.now())
    else:
        save_state(subscription, status=SubscriptionStatus.ACTIVE, past_due_since=None, stripe_subscription_id="",
                   cancel_at_period_end=False, current_period_end=None)
    change_plan(subscription, free_plan(), reason=reason, detail=detail, stripe_event_id=stripe_event_id)


@transaction.atomic
def apply_stripe_subscription(tenant_id: int, remote: RemoteSubscription, *, stripe_event_id: str = "",
                              now: datetime | None = None) -> None:
    """Make the tenant's plan and state match ``remote``, as Stripe holds it now.

    Idempotent and order-free: every event about a subscription ends here with a fresh copy,
    so a duplicate changes nothing and a late event cannot roll a newer state back.
    """
    now = now or timezone.now()
    subscription = lock_subscription(tenant_id)
    if subscription.stripe_subscription_id and subscription.stripe_subscription_id != remote.id:
        if remote.status not in LIVE_STATUSES:
            # An older subscription ending (or a checkout abandoned) must not touch the live one.
            log.info("tenant %s: ignoring %s subscription %s; it is on %s", tenant_id, remote.status, remote.id,
                     subscription.stripe_subscription_id)
            return
        # A second live subscription (two checkouts finished side by side): following both would
        # flip the plan with every invoice while Stripe charges twice. Keep the first; say so.
        log.error("tenant %s follows Stripe subscription %s; a second live one, %s, is not applied: cancel one "
                  "of them in Stripe", tenant_id, subscription.stripe_subscription_id, remote.id)
        return
    if remote.status == "incomplete":
        return
    if subscription.stripe_customer_id and subscription.stripe_customer_id != remote.customer_id:
        log.error("tenant %s: subscription %s belongs to customer %s, not %s; ignored", tenant_id, remote.id,
                  remote.customer_id, subscription.stripe_customer_id)
        return
    if remote.status in ENDED_STATUSES:
        if subscription.stripe_subscription_id == remote.id:
            drop_to_free(subscription, reason=PlanChangeReason.STRIPE, stripe_event_id=stripe_event_id,
                         detail=f"Stripe subscription {remote.id} {remote.status}")
        return
    paid_plan = plan_for_prices(remote.price_ids)
    if paid_plan is None:
        log.error("tenant %s: no plan has a Stripe price among %s (subscription %s); plan unchanged", tenant_id,
                  ", ".join(remote.price_ids) or "none", remote.id)
        return
    save_state(subscription, stripe_subscription_id=remote.id, stripe_customer_id=remote.customer_id,
               current_period_end=remote.current_period_end, cancel_at_period_end=remote.cancel_at_period_end)
    if remote.status == "past_due":
        mark_past_due(subscription, paid_plan, now=now, stripe_event_id=stripe_event_id)
    elif remote.status == "unpaid":
        drop_to_free(subscription, reason=PlanChangeReason.STRIPE, stripe_event_id=stripe_event_id,
                     keep_past_due=True, detail=f"Stripe subscription {remote.id} unpaid")
    else:
        restore(subscription, paid_plan, status=remote.status, stripe_event_id=stripe_event_id)


def expire_grace_periods(*, now: datetime | None = None) -> list[str]:
    """Tenants past due for longer than their plan's grace drop to Free (run periodically).

    With Stripe, the subscription is re-read first: a payment whose webhook was lost restores
    the plan here instead of dropping it. Stripe unreachable: that tenant waits for the next run.
    """
    now = now or timezone.now()
    dropped = []
    candidates = (Subscription.objects.select_related("plan")
                  .filter(status=SubscriptionStatus.PAST_DUE, past_due_since__isnull=False)
                  .exclude(plan__slug=FREE_PLAN_SLUG))
    for candidate in candidates:
        if now < grace_ends(candidate, candidate.plan):
            continue
        try:
            with transaction.atomic():
                subscription = lock_subscription(candidate.tenant_id)
                if subscription.stripe_subscription_id and stripe_api.is_configured():
                    remote = stripe_api.retrieve_subscription(subscription.stripe_subscription_id)
                    apply_stripe_subscription(subscription.tenant_id, remote, now=now)
                elif subscription.status == SubscriptionStatus.PAST_DUE:
                    mark_past_due(subscription, subscription.plan, now=now)
        except stripe_api.BillingError as exc:
            log.warning("tenant %s: grace period over but Stripe could not be read (%s); next run",
                        candidate.tenant_id, exc)
            continue
        if Subscription.objects.filter(tenant_id=candidate.tenant_id, plan__slug=FREE_PLAN_SLUG).exists():
            dropped.append(candidate.tenant.slug)
    return dropped


# --- the tenant owner's way to Stripe ----------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Redirect:
    url: str


def billing_page_url(base_url: str, tenant_slug: str, **query: str) -> str:
    """``base_url``: the gateway's URL as the tenant's browser reaches it (gateway.proxies)."""
    extra = "".join(f"&{name}={value}" for name, value in query.items())
    return f"{base_url}/billing?tenant={tenant_slug}{extra}"


def ensure_customer(tenant, *, email: str) -> str:
    subscription = Subscription.objects.get(tenant=tenant)
    if subscription.stripe_customer_id:
        return subscription.stripe_customer_id
    customer_id = stripe_api.create_customer(tenant_id=tenant.pk, tenant_slug=tenant.slug, email=email)
    with transaction.atomic():
        # Conditional: a concurrent checkout got the same customer (same idempotency key).
        Subscription.objects.filter(tenant=tenant, stripe_customer_id="").update(stripe_customer_id=customer_id)
    return customer_id


def start_checkout(tenant, plan: Plan, *, email: str, base_url: str) -> Redirect:
    """A Checkout Session for ``plan``; the webhook applies it once Stripe has the payment."""
    subscription = Subscription.objects.select_related("plan").get(tenant=tenant)
    if not plan.stripe_price_id:
        raise CheckoutRefused(f"Plan {plan.name} cannot be bought online; contact the operator.")
    if subscription.stripe_subscription_id:
        # A second Checkout would start a second subscription, billed beside the first.
        raise CheckoutRefused("This tenant already has a Stripe subscription; change or cancel it in the "
                              "billing portal (POST /api/billing/portal).")
    customer_id = ensure_customer(tenant, email=email)
    prices = [plan.stripe_price_id]
    if plan.allows_overage and plan.stripe_overage_price_id:
        prices.append(plan.stripe_overage_price_id)
    session = stripe_api.create_checkout_session(
        customer_id=customer_id, tenant_id=tenant.pk, price_ids=prices, plan_slug=plan.slug,
        success_url=billing_page_url(base_url, tenant.slug, checkout="success"),
        cancel_url=billing_page_url(base_url, tenant.slug, checkout="canceled"),
    )
    return Redirect(session.url)


def open_portal(tenant, *, base_url: str) -> Redirect:
    subscription = Subscription.objects.get(tenant=tenant)
    if not subscription.stripe_customer_id:
        raise CheckoutRefused("This tenant has no Stripe customer yet; choose a plan first "
                              "(POST /api/billing/checkout).")
    return Redirect(stripe_api.create_portal_session(customer_id=subscription.stripe_customer_id,
                                                     return_url=billing_page_url(base_url, tenant.slug)))
