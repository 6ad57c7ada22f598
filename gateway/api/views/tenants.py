"""The caller's tenants, and the base of every management view: who calls (signed in or a
management key, else 401 saying how) and, under /api/tenants/<slug>/, as whom (an Actor)."""

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway.access import get_memberships_for_user
from gateway.api import serializers as api
from gateway.api.errors import ERRORS, errors
from gateway.api.permissions import Actor, require_role, resolve_actor
from gateway.models import ApiKey


class ManagementView(APIView):
    """Any management endpoint: signed in or a management key, else 401 saying how."""

    def permission_denied(self, request, message=None, code=None):
        if request.authenticators and not request.successful_authenticator:
            raise exceptions.NotAuthenticated("Sign in, or send a tenant API key with the 'management' scope as "
                                              "'Authorization: Bearer tg-...'.")
        super().permission_denied(request, message, code)


class TenantView(ManagementView):
    """An endpoint under /api/tenants/<slug>/: sets ``self.actor`` before the handler runs.

    ``roles`` maps an HTTP method to (the roles that may call it, what the call does).
    """

    roles: dict[str, tuple[frozenset, str]] = {}
    actor: Actor

    def check_permissions(self, request):
        super().check_permissions(request)
        self.actor = resolve_actor(request, self.kwargs["slug"])
        method = "GET" if request.method in ("HEAD", "OPTIONS") else request.method
        if method in self.roles:
            roles, action = self.roles[method]
            require_role(self.actor, roles, action)


def tenant_row(tenant, role: str) -> dict:
    return {"slug": tenant.slug, "name": tenant.name, "role": role}


class TenantListView(ManagementView):
    @extend_schema(summary="The caller's tenants", tags=["tenants"],
                   responses={200: api.TenantSerializer(many=True), 401: ERRORS[401]},
                   description="A signed-in user's tenants with their role in each; a management key's own tenant.")
    def get(self, request):
        if isinstance(request.auth, ApiKey):
            rows = [tenant_row(request.auth.tenant, request.user.role)]
        else:
            rows = [tenant_row(m.tenant, m.role) for m in get_memberships_for_user(request.user)]
        return Response(api.TenantSerializer(rows, many=True).data)


class TenantDetailView(TenantView):
    @extend_schema(summary="One tenant and the caller's role in it", tags=["tenants"],
                   responses={200: api.TenantSerializer, **errors()})
    def get(self, request, slug: str):
        return Response(api.TenantSerializer(tenant_row(self.actor.tenant, self.actor.role)).data)

