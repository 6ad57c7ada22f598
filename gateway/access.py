"""get_<thing>_for_...: the only way views and consumers load tenant data.

Each returns only what the given user may see; an outsider gets DoesNotExist, never another
tenant's row.
"""

from gateway.models import Membership


def get_membership_for_user(user, tenant_slug: str) -> Membership:
    if not user.is_authenticated:
        raise Membership.DoesNotExist("not signed in")
    return Membership.objects.select_related("tenant").get(user=user, tenant__slug=tenant_slug)
