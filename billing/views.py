"""The tenant's billing: GET /billing (page), POST /api/billing/checkout and /api/billing/portal.

Checkout and portal are for the tenant's owner or billing members, signed in (session). They
take the tenant's slug (and the plan's) as JSON or as the page's form, and answer JSON
``{"url": ...}`` or, for a form, a 303 to Stripe.
"""

import json
from decimal import Decimal

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import Http404, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from billing import stripe_api
from billing.models import Plan, PlanChange, Subscription, SubscriptionStatus
from billing.stripe_api import BillingError, BillingNotConfigured, StripeUnavailable
from billing.subscriptions import CheckoutRefused, Redirect, grace_ends, open_portal, start_checkout
from gateway.access import get_membership_for_user
from gateway.models import Membership, Role
from usage.models import MonthlySpend, UsageRecord

BILLING_ROLES = {Role.OWNER, Role.BILLING}


def can_manage_billing(membership: Membership) -> bool:
    return membership.role in BILLING_ROLES


class InvalidRequest(Exception):
    pass


def error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": {"message": message}}, status=status)


def is_form(request) -> bool:
    return request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data")


def read_fields(request) -> dict:
    if is_form(request):
        return request.POST.dict()
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def billing_action(action):
    """Signed in, a member allowed to pay for the tenant, billing configured; then ``action``."""

    @require_POST
    def view(request) -> HttpResponse:
        if not request.user.is_authenticated:
            return error(401, "Sign in first.")
        fields = read_fields(request)
        try:
            membership = get_membership_for_user(request.user, str(fields.get("tenant") or ""))
        except Membership.DoesNotExist:
            return error(404, "No such tenant among yours: send its slug as 'tenant'.")
        if not can_manage_billing(membership):
            return error(403, f"Only the owner or a billing member of {membership.tenant.slug} can manage billing.")
        if not stripe_api.is_configured():
            return error(503, "Billing is not configured on this server; an operator assigns plans in the admin.")
        try:
            redirect = action(request, membership, fields)
        except InvalidRequest as exc:
            return error(400, str(exc))
        except CheckoutRefused as exc:
            return error(409, str(exc))
        except (BillingNotConfigured, StripeUnavailable):
            return error(503, "Stripe is unavailable right now; try again in a minute.")
        except BillingError:
            return error(502, "Stripe refused the request; the operator has been told.")
        if is_form(request):
            return HttpResponseRedirect(redirect.url, status=303)
        return JsonResponse({"url": redirect.url})

    return view


@billing_action
def checkout(request, membership: Membership, fields: dict) -> Redirect:
    plan = Plan.objects.filter(slug=str(fields.get("plan") or "")).first()
    if plan is None:
        raise InvalidRequest("Unknown plan: send a plan's slug as 'plan'.")
    return start_checkout(membership.tenant, plan, email=request.user.email)


@billing_action
def portal(request, membership: Membership, fields: dict) -> Redirect:
    return open_portal(membership.tenant)


def month_usage(tenant) -> dict:
    start = timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    ledger = MonthlySpend.objects.filter(tenant=tenant, month=start.date()).first()
    requests = UsageRecord.objects.filter(tenant=tenant, created_at__gte=start).aggregate(n=Count("id"))["n"]
    return {"spend": ledger.settled if ledger else Decimal(0), "requests": requests, "month": start}


@login_required
@require_GET
def billing_page(request) -> HttpResponse:
    slug = request.GET.get("tenant")
    if not slug:
        first = Membership.objects.filter(user=request.user).select_related("tenant").order_by("tenant__slug").first()
        if first is None:
            raise Http404("You are not a member of any tenant.")
        slug = first.tenant.slug
    try:
        membership = get_membership_for_user(request.user, slug)
    except Membership.DoesNotExist as exc:
        raise Http404("No such tenant among yours.") from exc
    subscription = Subscription.objects.select_related("plan").get(tenant=membership.tenant)
    plan = subscription.plan
    configured = stripe_api.is_configured()
    return render(request, "billing/page.html", {
        "tenant": membership.tenant,
        "subscription": subscription,
        "plan": plan,
        "usage": month_usage(membership.tenant),
        "configured": configured,
        "can_manage": can_manage_billing(membership),
        "is_past_due": subscription.status == SubscriptionStatus.PAST_DUE,
        "grace_ends": grace_ends(subscription, plan),
        "offers": [p for p in Plan.objects.exclude(stripe_price_id="") if p.pk != plan.pk] if configured else [],
        "history": PlanChange.objects.filter(tenant=membership.tenant).select_related("from_plan", "to_plan")[:10],
        "checkout": request.GET.get("checkout", ""),
    })
