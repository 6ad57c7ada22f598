"""/api/: the management API (tenants' keys, members, usage, plan, billing), its OpenAPI schema
and docs. /api/billing/checkout and /api/billing/portal are the dashboard's forms (gateway/dashboard/urls.py)."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from gateway.api.errors import unknown_endpoint
from gateway.api.views import alerts, billing, budgets, cache, keys, members, tenants, usage

TENANT = "tenants/<slug:slug>/"

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("tenants/", tenants.TenantListView.as_view(), name="api-tenants"),
    path(TENANT, tenants.TenantDetailView.as_view(), name="api-tenant"),
    path(TENANT + "keys/", keys.KeyListView.as_view(), name="api-keys"),
    path(TENANT + "keys/<int:key_id>/", keys.KeyDetailView.as_view(), name="api-key"),
    path(TENANT + "keys/<int:key_id>/revoke/", keys.KeyRevokeView.as_view(), name="api-key-revoke"),
    path(TENANT + "budgets/", budgets.BudgetListView.as_view(), name="api-budgets"),
    path(TENANT + "budgets/<int:budget_id>/", budgets.BudgetDetailView.as_view(), name="api-budget"),
    path(TENANT + "members/", members.MemberListView.as_view(), name="api-members"),
    path(TENANT + "members/<int:member_id>/", members.MemberDetailView.as_view(), name="api-member"),
    path(TENANT + "invitations/", members.InvitationListView.as_view(), name="api-invitations"),
    path(TENANT + "invitations/<int:invitation_id>/revoke/", members.InvitationRevokeView.as_view(),
         name="api-invitation-revoke"),
    path(TENANT + "usage/records/", usage.UsageRecordListView.as_view(), name="api-usage-records"),
    path(TENANT + "usage/summary/", usage.UsageSummaryView.as_view(), name="api-usage-summary"),
    path(TENANT + "plan/", billing.PlanView.as_view(), name="api-plan"),
    path(TENANT + "billing/checkout/", billing.CheckoutView.as_view(), name="api-billing-checkout"),
    path(TENANT + "billing/portal/", billing.PortalView.as_view(), name="api-billing-portal"),
    path(TENANT + "cache/", cache.CacheSettingsView.as_view(), name="api-cache"),
    path(TENANT + "keys/<int:key_id>/cache/", cache.KeyCacheView.as_view(), name="api-key-cache"),
    path(TENANT + "alerts/", alerts.AlertSettingsView.as_view(), name="api-alerts"),
    path(TENANT + "alerts/secret/", alerts.AlertSecretView.as_view(), name="api-alerts-secret"),
    path(TENANT + "alerts/deliveries/", alerts.AlertDeliveryListView.as_view(), name="api-alert-deliveries"),
    path(TENANT + "alerts/deliveries/<int:delivery_id>/redeliver/", alerts.AlertRedeliverView.as_view(),
         name="api-alert-redeliver"),
    # Included after the dashboard: its /api/billing/* forms are matched before this.
    re_path(r"^(?P<rest>.*)$", unknown_endpoint),
]
