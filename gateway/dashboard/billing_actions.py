"""The tenant's billing forms (dashboard): POST /api/billing/checkout and /api/billing/portal; GET /billing redirects
to the dashboard's billing page (gateway/dashboard/billing.py).

Checkout and portal are for the tenant's owner or billing members, signed in (session). They
take the tenant's slug (and the plan's) as JSON or as the page's form, and answer JSON
``{"url": ...}`` or, for a form, a 303 to Stripe.
"""

import json

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, HttpResponseRedirect, JsonResponse
from django.views.decorators.http import require_GET

from billing import stripe_api
from billing.models import Plan
from billing.stripe_api import BillingError, BillingNotConfigured, StripeUnavailable
from billing.subscriptions import CheckoutRefused, Redirect, open_portal, start_checkout
from gateway.access import get_membership_for_user
from gateway.dashboard.navigation import current_membership
from gateway.dashboard.tenancy import load_membership, tenant_url
from gateway.models import BILLING_MANAGERS, Membership
from gateway.proxies import public_base_url


def can_manage_billing(membership: Membership) -> bool:
    return membership.role in BILLING_MANAGERS


class InvalidRequest(Exception):
    pass


# The management API's error codes (gateway/api/errors.py), so every /api/ error reads one way.
ERROR_CODES = {400: "invalid", 401: "not_authenticated", 403: "permission_denied", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 502: "bad_gateway", 503: "unavailable"}


def error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": {"message": message, "code": ERROR_CODES[status]}}, status=status)


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

    def view(request) -> HttpResponse:
        if request.method != "POST":  # JSON, as every /api/ answer; require_POST's 405 is an empty page
            refused = error(405, f"Method {request.method} not allowed: POST the tenant's slug as 'tenant'.")
            refused["Allow"] = "POST"
            return refused
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
    return start_checkout(membership.tenant, plan, email=request.user.email, base_url=public_base_url(request))


@billing_action
def portal(request, membership: Membership, fields: dict) -> Redirect:
    return open_portal(membership.tenant, base_url=public_base_url(request))


@login_required
@require_GET
def billing_page(request) -> HttpResponse:
    """The billing page's old address (Stripe's return URLs use it): to the dashboard's billing
    page of ?tenant=, else of the current tenant, keeping the rest of the query."""
    slug = request.GET.get("tenant")
    membership = load_membership(request, slug) if slug else current_membership(request)
    if membership is None:
        raise Http404("You are not a member of any tenant.")
    query = request.GET.copy()
    query.pop("tenant", None)
    url = tenant_url(membership.tenant.slug, "billing/")
    return HttpResponseRedirect(f"{url}?{query.urlencode()}" if query else url)
