"""Which tenant a dashboard page is about, and who may open it.

Every page under /t/<slug>/ is wrapped in ``tenant_page(<page>)``: the user must be signed in,
a member of the tenant (an outsider gets 404, as if the tenant did not exist) and hold a role
that may open the page (else 403 with a message naming who may). The view receives the
Membership; the session remembers the tenant as the current one, and the layout
(templates/dashboard/base.html) shows the navigation that role may use.

Role rules (enforced here and in the workflows, never only by hiding buttons):
owner/admin manage keys and members; only an owner makes or removes owners and the last owner
cannot leave or be demoted; a member views usage and models, uses the playground and manages
its own keys; a billing member sees usage and billing and manages billing; owners, admins and
billing members set the spend alerts; owners and admins set budgets (a key's, an end user's),
which everyone sees.
"""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import Http404
from django.shortcuts import render

from gateway.access import get_membership_for_user
from gateway.models import ALERT_MANAGERS, EVERYONE, MANAGERS, TEAM, Membership, Role

CURRENT_TENANT_SESSION_KEY = "dashboard_tenant"


# page -> roles that may open it
PAGE_ROLES = {
    "usage": EVERYONE,
    "playground": TEAM,
    "keys": TEAM,
    "members": TEAM,
    "models": TEAM,
    "billing": frozenset({Role.OWNER, Role.ADMIN, Role.BILLING}),
    "alerts": ALERT_MANAGERS,
    "cache": EVERYONE,  # owners and admins change it (cache.py)
    "budgets": EVERYONE,  # owners and admins change them (budgets.py)
}

# (page, label, path under /t/<slug>/) in navigation order
NAVIGATION = [
    ("usage", "Usage", "usage/"),
    ("usage", "Requests", "usage/records/"),
    ("playground", "Playground", "playground/"),
    ("keys", "API keys", "keys/"),
    ("budgets", "Budgets", "budgets/"),
    ("members", "Members", "members/"),
    ("models", "Models", "models/"),
    ("cache", "Cache", "cache/"),
    ("billing", "Billing", "billing/"),
    ("alerts", "Alerts", "billing/alerts/"),
]


def can_open(membership: Membership, page: str) -> bool:
    return membership.role in PAGE_ROLES[page]


def can_manage_members(membership: Membership) -> bool:
    return membership.role in MANAGERS


def can_manage_all_keys(membership: Membership) -> bool:
    return membership.role in MANAGERS


def tenant_url(slug: str, path: str = "usage/") -> str:
    return f"/t/{slug}/{path}"


def roles_that_may_open(page: str) -> str:
    labels = [role.label.lower() for role in Role if role in PAGE_ROLES[page]]
    return ", ".join(labels[:-1]) + f" or {labels[-1]}" if len(labels) > 1 else labels[0]


def forbidden(request, membership: Membership, message: str):
    """403 inside the layout, saying what the user's role does not allow."""
    request.dashboard_membership = membership
    return render(request, "dashboard/forbidden.html", {"membership": membership, "message": message}, status=403)


def load_membership(request, tenant_slug: str) -> Membership:
    """The signed-in user's membership of the tenant, or 404 for anyone else."""
    try:
        return get_membership_for_user(request.user, tenant_slug)
    except Membership.DoesNotExist as exc:
        raise Http404("No such tenant among yours.") from exc


def tenant_page(page: str):
    """Decorate a view ``view(request, membership, **kwargs)`` served at /t/<tenant_slug>/..."""

    def decorate(view):
        @wraps(view)
        def wrapper(request, tenant_slug: str, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            membership = load_membership(request, tenant_slug)
            request.dashboard_membership = membership
            if not can_open(membership, page):
                return forbidden(request, membership, (
                    f"Your role in {membership.tenant.name} is {membership.get_role_display().lower()}: "
                    f"this page is for {roles_that_may_open(page)} members."))
            request.session[CURRENT_TENANT_SESSION_KEY] = membership.tenant.slug
            return view(request, membership, **kwargs)

        return wrapper

    return decorate
