from django.urls import path

from billing import views, webhooks

urlpatterns = [
    path("billing", views.billing_page, name="billing"),
    path("billing/stripe/webhook", webhooks.stripe_webhook, name="stripe-webhook"),
    path("api/billing/checkout", views.checkout, name="billing-checkout"),
    path("api/billing/portal", views.portal, name="billing-portal"),
]
