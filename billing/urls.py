from django.urls import path

from billing import webhooks

# Stripe's webhook; the tenant's billing pages and forms are the dashboard's
# (gateway/dashboard/billing_actions.py).
urlpatterns = [
    path("billing/stripe/webhook", webhooks.stripe_webhook, name="stripe-webhook"),
]
