"""Template context for the dashboard layout: the current tenant, its navigation, the switcher."""

from gateway.access import get_memberships_for_user, is_tenant_past_due
from gateway.dashboard.tenancy import NAVIGATION, can_open, tenant_url


def dashboard(request) -> dict:
    """Set on pages wrapped in tenant_page(); empty elsewhere (sign-in pages, the front page)."""
    membership = getattr(request, "dashboard_membership", None)
    if membership is None:
        return {}
    prefix = tenant_url(membership.tenant.slug, "")
    return {
        "current_membership": membership,
        "current_tenant": membership.tenant,
        "navigation": [
            {"label": label, "url": prefix + path, "active": request.path == prefix + path}
            for page, label, path in NAVIGATION if can_open(membership, page)
        ],
        "user_memberships": get_memberships_for_user(request.user),
        "is_past_due": lambda: is_tenant_past_due(membership.tenant),
    }
