"""/dashboard/ (to the current tenant's usage), the tenant switcher, and which tenant is current."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_POST

from gateway.access import get_memberships_for_user
from gateway.dashboard.tenancy import CURRENT_TENANT_SESSION_KEY, load_membership, tenant_url
from gateway.models import Membership


def current_membership(request) -> Membership | None:
    """The tenant the session remembers, else the user's first; None for a user in none."""
    memberships = get_memberships_for_user(request.user)
    remembered = request.session.get(CURRENT_TENANT_SESSION_KEY)
    return next((m for m in memberships if m.tenant.slug == remembered), memberships[0] if memberships else None)


@login_required
def dashboard(request):
    membership = current_membership(request)
    if membership is None:
        return render(request, "dashboard/no_tenant.html")
    return HttpResponseRedirect(tenant_url(membership.tenant.slug))


@login_required
@require_POST
def switch_tenant(request):
    membership = load_membership(request, request.POST.get("tenant", ""))
    request.session[CURRENT_TENANT_SESSION_KEY] = membership.tenant.slug
    return HttpResponseRedirect(tenant_url(membership.tenant.slug))
