"""The tenant dashboard, included at the site root (URL plan: /work/notes/dashboard_urls.md).

Pages of one tenant live under /t/<tenant_slug>/ and are wrapped in tenancy.tenant_page().
"""

from django.urls import include, path

from gateway.dashboard import (
    accounts,
    alerts,
    billing,
    billing_actions,
    cache,
    catalog,
    credits,
    keys,
    members,
    navigation,
    playground,
    signup,
    usage_views,
)

urlpatterns = [
    path("billing", billing_actions.billing_page, name="billing"),
    path("api/billing/checkout", billing_actions.checkout, name="billing-checkout"),
    path("api/billing/portal", billing_actions.portal, name="billing-portal"),
    path("api/billing/credits/checkout", credits.buy_credits, name="billing-credits-checkout"),
    path("api/billing/credits/card", credits.save_card, name="billing-credits-card"),
    path("accounts/signup/", signup.signup, name="signup"),
    path("accounts/signup/sent/", signup.signup_sent, name="signup-sent"),
    path("accounts/signup/confirm/<str:token>/", signup.confirm_signup, name="signup-confirm"),
    path("accounts/login/", accounts.LoginView.as_view(), name="login"),
    path("accounts/password_reset/", accounts.PasswordResetView.as_view(), name="password_reset"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("invitations/<str:token>/", members.accept_invitation, name="invitation-accept"),
    path("dashboard/", navigation.dashboard, name="dashboard"),
    path("dashboard/switch/", navigation.switch_tenant, name="dashboard-switch"),
    path("t/<slug:tenant_slug>/keys/", keys.keys_page, name="dashboard-keys"),
    path("t/<slug:tenant_slug>/keys/<int:key_id>/revoke/", keys.revoke_key, name="dashboard-key-revoke"),
    path("t/<slug:tenant_slug>/members/", members.members_page, name="dashboard-members"),
    path("t/<slug:tenant_slug>/members/invite/", members.invite, name="dashboard-member-invite"),
    path("t/<slug:tenant_slug>/members/<int:membership_id>/role/", members.change_role,
         name="dashboard-member-role"),
    path("t/<slug:tenant_slug>/members/<int:membership_id>/remove/", members.remove,
         name="dashboard-member-remove"),
    path("t/<slug:tenant_slug>/invitations/<int:invitation_id>/revoke/", members.revoke_invitation,
         name="dashboard-invitation-revoke"),
    path("t/<slug:tenant_slug>/models/", catalog.models_page, name="dashboard-models"),
    path("t/<slug:tenant_slug>/billing/", billing.billing_page, name="dashboard-billing"),
    path("t/<slug:tenant_slug>/billing/auto-top-up/", credits.auto_top_up, name="dashboard-auto-top-up"),
    path("t/<slug:tenant_slug>/cache/", cache.cache_page, name="dashboard-cache"),
    path("t/<slug:tenant_slug>/cache/keys/<int:key_id>/", cache.key_cache, name="dashboard-key-cache"),
    path("t/<slug:tenant_slug>/billing/alerts/", alerts.alerts_page, name="dashboard-alerts"),
    path("t/<slug:tenant_slug>/billing/alerts/secret/", alerts.rotate_secret, name="dashboard-alerts-secret"),
    path("t/<slug:tenant_slug>/billing/alerts/test/", alerts.test_event, name="dashboard-alerts-test"),
    path("t/<slug:tenant_slug>/billing/alerts/deliveries/<int:delivery_id>/redeliver/", alerts.redeliver_event,
         name="dashboard-alerts-redeliver"),
    path("t/<slug:tenant_slug>/usage/", usage_views.usage_page, name="dashboard-usage"),
    path("t/<slug:tenant_slug>/usage/records/", usage_views.records_page, name="dashboard-usage-records"),
    path("t/<slug:tenant_slug>/usage/export.csv", usage_views.export_csv, name="dashboard-usage-export"),
    path("t/<slug:tenant_slug>/playground/", playground.playground_page, name="dashboard-playground"),
]
