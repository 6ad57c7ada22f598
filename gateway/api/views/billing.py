"""A tenant's plan with this month's use, and its Stripe links (checkout, billing portal)."""

from decimal import Decimal

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.response import Response

from billing import stripe_api
from billing.models import Plan
from billing.stripe_api import BillingError, BillingNotConfigured, StripeUnavailable
from billing.subscriptions import CheckoutRefused, grace_ends, open_portal, start_checkout
from gateway.access import (
    count_active_api_keys_for_tenant,
    count_members_for_tenant,
    get_subscription_for_tenant,
)
from gateway.api import serializers as api
from gateway.api.errors import ERROR, BadGateway, Conflict, ServiceUnavailable, errors
from gateway.api.permissions import BILLING_MANAGERS, EVERYONE
from gateway.api.views.tenants import TenantView
from gateway.proxies import public_base_url
from usage.summaries import month_summary


class PlanView(TenantView):
    roles = {"GET": (EVERYONE, "reading the plan")}

    @extend_schema(summary="Current plan, limits and this month's use", tags=["billing"],
                   responses={200: api.PlanStatusSerializer, **errors()})
    def get(self, request, slug: str):
        tenant = self.actor.tenant
        subscription = get_subscription_for_tenant(tenant)
        plan = subscription.plan
        month = month_summary(tenant.pk)
        spent = month["cost"] + month["reserved"]
        limit = plan.monthly_spend_limit
        return Response(api.PlanStatusSerializer({
            "plan": plan,
            "subscription": {**{name: getattr(subscription, name) for name in (
                "status", "current_period_end", "cancel_at_period_end", "past_due_since")},
                "grace_ends": grace_ends(subscription, plan)},
            "usage": {
                "month": month["month"], "requests": month["requests"], "spend": month["cost"],
                "reserved": month["reserved"],
                "spend_remaining": max(limit - spent, Decimal(0)) if limit is not None else None,
                "active_keys": count_active_api_keys_for_tenant(tenant),
                "members": count_members_for_tenant(tenant),
            },
        }).data)


def billing_redirect(action) -> Response:
    """Run a Stripe ``action`` (returning a Redirect), mapping its failures as /api/billing/* does."""
    if not stripe_api.is_configured():
        raise ServiceUnavailable("Billing is not configured on this server; an operator assigns plans in the admin.")
    try:
        redirect = action()
    except CheckoutRefused as exc:
        raise Conflict(str(exc)) from exc
    except (BillingNotConfigured, StripeUnavailable) as exc:
        raise ServiceUnavailable("Stripe is unavailable right now; try again in a minute.") from exc
    except BillingError as exc:
        raise BadGateway("Stripe refused the request; the operator has been told.") from exc
    return Response(api.RedirectSerializer({"url": redirect.url}).data)


BILLING_ERRORS = {**errors(400, 409), 502: OpenApiResponse(ERROR, description="Stripe refused the request."),
                  503: OpenApiResponse(ERROR, description="Billing is not configured, or Stripe is unavailable.")}


class CheckoutView(TenantView):
    roles = {"POST": (BILLING_MANAGERS, "managing billing")}

    @extend_schema(summary="Start a Stripe Checkout for a plan", tags=["billing"], request=api.CheckoutSerializer,
                   responses={200: api.RedirectSerializer, **BILLING_ERRORS},
                   description="The same as POST /api/billing/checkout. The plan applies once Stripe confirms "
                               "the payment (webhook).")
    def post(self, request, slug: str):
        form = api.CheckoutSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        plan = Plan.objects.filter(slug=form.validated_data["plan"]).first()
        if plan is None:
            raise exceptions.ValidationError({"plan": [f"Unknown plan '{form.validated_data['plan']}'."]})
        base_url = public_base_url(request)
        return billing_redirect(lambda: start_checkout(self.actor.tenant, plan, email=self.actor.user.email,
                                                       base_url=base_url))


class PortalView(TenantView):
    roles = {"POST": (BILLING_MANAGERS, "managing billing")}

    @extend_schema(summary="Open the Stripe billing portal", tags=["billing"], request=None,
                   responses={200: api.RedirectSerializer, **BILLING_ERRORS},
                   description="The same as POST /api/billing/portal: change or cancel the plan, update the card, "
                               "see invoices.")
    def post(self, request, slug: str):
        base_url = public_base_url(request)
        return billing_redirect(lambda: open_portal(self.actor.tenant, base_url=base_url))

