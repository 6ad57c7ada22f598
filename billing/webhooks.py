"""POST /billing/stripe/webhook: Stripe tells us a subscription, checkout, invoice or payment
(credits) changed.

    verify the signature (stripe-python's own check)      -> 400, nothing changes
    type not in stripe_events.HANDLERS                     -> 200, ignored
    insert StripeEvent (unique event id), then dispatch    -> 200; a duplicate -> 200, acts no more
    re-fetching from Stripe fails                          -> 503, rolled back: Stripe delivers again
"""

import logging

from django.db import IntegrityError, transaction
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing import stripe_api
from billing.models import StripeEvent
from billing.stripe_api import (
    BillingNotConfigured,
    InvalidWebhook,
    StripeRefused,
    StripeUnavailable,
    WebhookEvent,
)
from billing.stripe_events import HANDLERS

log = logging.getLogger(__name__)


class DuplicateEvent(Exception):
    pass


@transaction.atomic
def record_and_dispatch(event: WebhookEvent) -> None:
    """The unique row first: a concurrent delivery of the same event waits on it (or on the
    database lock) and then fails the insert, so only one of them ever acts."""
    try:
        with transaction.atomic():
            StripeEvent.objects.create(
                stripe_event_id=event.id, type=event.type, api_version=event.api_version, created=event.created,
                livemode=event.livemode, stripe_object_id=str(event.object.get("id") or ""),
            )
    except IntegrityError as exc:
        raise DuplicateEvent(event.id) from exc
    HANDLERS[event.type](event)


@csrf_exempt
@require_POST
def stripe_webhook(request) -> HttpResponse:
    try:
        event = stripe_api.verify_webhook(request.body, request.headers.get("Stripe-Signature", ""))
    except BillingNotConfigured as exc:
        return JsonResponse({"error": str(exc)}, status=503)
    except InvalidWebhook as exc:
        log.warning("Stripe webhook refused: %s", exc)
        return JsonResponse({"error": str(exc)}, status=400)
    if event.type not in HANDLERS:
        return JsonResponse({"received": event.id, "ignored": True})
    if event.api_version and event.api_version != stripe_api.API_VERSION:
        # We read only ids from events and re-fetch with our pinned version, so an endpoint on
        # another version still works; set it to API_VERSION in the Stripe dashboard anyway.
        log.info("event %s has API version %s; Tollgate pins %s", event.id, event.api_version,
                 stripe_api.API_VERSION)
    try:
        record_and_dispatch(event)
    except DuplicateEvent:
        return JsonResponse({"received": event.id, "duplicate": True})
    except (StripeUnavailable, StripeRefused) as exc:
        log.error("event %s: reading Stripe failed (%s); Stripe will deliver it again", event.id, exc)
        return JsonResponse({"error": "Stripe is unavailable; deliver again later."}, status=503)
    return JsonResponse({"received": event.id})
