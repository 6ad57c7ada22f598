"""Sending spend-alert events (billing/alerts.py queues them): a mail to the tenant's owners and
billing members, a signed POST to its webhook; retried with exponential backoff from the
background process (gateway/background.py).

    deliver_due(now=, limit=)            claim and send what is due at ``now``; the deliveries tried
    sign(secret, timestamp, body)        "v1=" + hex HMAC-SHA256 of "<timestamp>.<body>"
    signature_headers(secret, event_id, event_type, body, timestamp)   the headers of a POST
    redeliver(delivery, now=)            the event again: a new webhook delivery, same event id
                                         (CannotRedeliver for a mail or one still being tried)
    retry_delay(attempts)                ALERT_RETRY_BASE_SECONDS doubled per attempt, at most
                                         ALERT_RETRY_MAX_SECONDS; ALERT_MAX_ATTEMPTS in all

A webhook POST goes through the outbound-fetch policy (providers/outbound.py): https, public
addresses only, on every redirect (a POST follows only 307 and 308). A 2xx answer delivers it;
anything else is retried, except a URL the policy refuses, which fails at once. The receiver
verifies the signature as docs/REFERENCE.md ("Spend alerts") shows.

Each attempt is claimed with one conditional UPDATE that counts it and moves next_attempt_at
past the attempt's time limit, so no two processes send the same attempt; an attempt whose
process died is due again once that passes (the receiver may then see an event twice: it
dedupes by the event id, which every attempt and redelivery of one event shares).
"""

import asyncio
import functools
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import F
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from billing.alert_models import AlertDelivery, AlertSettings, DeliveryChannel, DeliveryStatus
from billing.alerts import check_budget_alerts, has_webhook, webhook_secret_of
from billing.credits import billing_contacts
from providers import outbound
from providers.blocking import run_blocking

log = logging.getLogger(__name__)

DELIVERY_BATCH = 50
RESPONSE_BYTES = 1024 * 1024  # a receiver's answer is read (and dropped) up to this
POLICY_RULES = {"scheme", "url", "address"}  # a refusal on these does not heal by waiting


@dataclass(frozen=True, slots=True)
class Attempt:
    delivered: bool
    response_status: int | None = None
    error: str = ""
    url: str = ""  # where it went: the webhook URL, or the mail's recipients
    final: bool = False  # failed for good: not retried


@dataclass(frozen=True, slots=True)
class Claimed:
    delivery: AlertDelivery
    url: str = ""  # the webhook's URL and secret as the tenant has them now ("" without a webhook)
    secret: str = ""


def sign(secret: str, timestamp: int, body: str) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"v1={digest}"


def signature_headers(secret: str, event_id: str, event_type: str, body: str, timestamp: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "Tollgate-Webhooks/1",
        "Tollgate-Event-Id": event_id,
        "Tollgate-Event-Type": event_type,
        "Tollgate-Timestamp": str(timestamp),
        "Tollgate-Signature": sign(secret, timestamp, body),
    }


def retry_delay(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed attempt."""
    seconds = settings.ALERT_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, settings.ALERT_RETRY_MAX_SECONDS))


def claim_seconds() -> float:
    return settings.ALERT_WEBHOOK_TIMEOUT_SECONDS + 60


# --- claiming and recording (blocking; run off the loop) ---------------------------------

def claim_due(now: datetime, limit: int) -> list[Claimed]:
    due = (AlertDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
           .order_by("next_attempt_at", "pk").values_list("pk", "next_attempt_at")[:limit])
    hold = now + timedelta(seconds=claim_seconds())
    mine = [pk for pk, due_at in list(due)
            if AlertDelivery.objects.filter(pk=pk, status=DeliveryStatus.PENDING, next_attempt_at=due_at)
            .update(next_attempt_at=hold, attempts=F("attempts") + 1, last_attempt_at=now)]
    deliveries = list(AlertDelivery.objects.filter(pk__in=mine).select_related("tenant").order_by("pk"))
    webhooks = {row.tenant_id: row for row in AlertSettings.objects.filter(
        tenant_id__in={d.tenant_id for d in deliveries if d.channel == DeliveryChannel.WEBHOOK})}
    claimed = []
    for delivery in deliveries:
        hook = webhooks.get(delivery.tenant_id)
        if delivery.channel == DeliveryChannel.WEBHOOK and hook is not None and has_webhook(hook):
            claimed.append(Claimed(delivery, hook.webhook_url, webhook_secret_of(hook)))
        else:
            claimed.append(Claimed(delivery))
    return claimed


def record_attempt(delivery: AlertDelivery, attempt: Attempt, now: datetime) -> None:
    """The attempt's outcome, unless the claim ran out and another process took the delivery."""
    fields = {"response_status": attempt.response_status, "error": attempt.error[:300], "url": attempt.url[:500]}
    if attempt.delivered:
        fields.update(status=DeliveryStatus.SUCCEEDED, next_attempt_at=None)
    elif attempt.final or delivery.attempts >= settings.ALERT_MAX_ATTEMPTS:
        fields.update(status=DeliveryStatus.FAILED, next_attempt_at=None)
    else:
        fields.update(next_attempt_at=now + retry_delay(delivery.attempts))
    AlertDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.PENDING,
                                 attempts=delivery.attempts).update(**fields)
    if not attempt.delivered:
        log.warning("alert delivery %s (%s, tenant %s) attempt %s failed: %s", delivery.pk, delivery.channel,
                    delivery.tenant_id, delivery.attempts, attempt.error)


def record_attempts(outcomes: list[tuple[AlertDelivery, Attempt]], now: datetime) -> None:
    for delivery, attempt in outcomes:
        record_attempt(delivery, attempt, now)


# --- sending ------------------------------------------------------------------------------

async def deliver_due(*, now: datetime | None = None, limit: int = DELIVERY_BATCH) -> list[AlertDelivery]:
    """Send every delivery due at ``now`` (at most ``limit``) that this process claims."""
    now = now or timezone.now()
    claimed = await run_blocking(claim_due, now, limit)
    attempts = await asyncio.gather(*(send(item, now) for item in claimed))
    outcomes = [(item.delivery, attempt) for item, attempt in zip(claimed, attempts, strict=True)]
    await run_blocking(record_attempts, outcomes, now)
    return [item.delivery for item in claimed]


async def send(item: Claimed, now: datetime) -> Attempt:
    if item.delivery.channel == DeliveryChannel.MAIL:
        return await run_blocking(mail_event, item.delivery)
    if not item.url:
        return Attempt(False, error="The tenant has no webhook any more.", final=True)
    return await post_event(item, now)


async def post_event(item: Claimed, now: datetime) -> Attempt:
    delivery = item.delivery
    timestamp = int(now.timestamp())
    headers = signature_headers(item.secret, delivery.event_id, delivery.event_type, delivery.payload, timestamp)
    try:
        answer = await outbound.fetch(item.url, method="POST", body=delivery.payload.encode(), headers=headers,
                                      time_limit=settings.ALERT_WEBHOOK_TIMEOUT_SECONDS, max_bytes=RESPONSE_BYTES)
    except outbound.UrlRefused as exc:
        return Attempt(False, exc.upstream_status, str(exc), item.url, final=exc.rule in POLICY_RULES)
    if 200 <= answer.status < 300:
        return Attempt(True, answer.status, url=item.url)
    return Attempt(False, answer.status, f"{answer.url[:200]} answered HTTP {answer.status}.", item.url)


def mail_event(delivery: AlertDelivery) -> Attempt:
    recipients = billing_contacts(delivery.tenant_id)
    if not recipients:
        return Attempt(False, error="No owner or billing member has an email address.", final=True)
    subject, body = alert_mail(delivery.tenant, json.loads(delivery.payload))
    try:
        send_mail(subject=subject, message=body, from_email=None, recipient_list=recipients)
    except Exception as exc:  # the mail server is down or refused: retried like a webhook
        return Attempt(False, error=f"The mail could not be sent ({type(exc).__name__}).", url=", ".join(recipients))
    return Attempt(True, url=", ".join(recipients))


def alert_mail(tenant, event: dict) -> tuple[str, str]:
    """(subject, body) of a threshold event's mail."""
    data = event["data"]
    budget = data["budget"]
    base = settings.PUBLIC_BASE_URL.rstrip("/")
    context = {
        "tenant": tenant, "threshold": data["threshold"], "label": budget["label"] or "a budget",
        "amount": Decimal(budget["amount"]), "spent": Decimal(data["spent"]), "period": budget["period"],
        "period_end": parse_datetime(data["period_end"]),
        "also_passed": ", ".join(f"{t}%" for t in data["thresholds_passed"] if t != data["threshold"]),
        "billing_link": f"{base}/t/{tenant.slug}/billing/", "alerts_link": f"{base}/t/{tenant.slug}/billing/alerts/",
    }
    subject = f"{tenant.name}: {data['threshold']}% of {context['label']} reached"
    return subject, render_to_string("billing/email/budget_alert.txt", context)


class CannotRedeliver(Exception):
    pass


def redeliver(delivery: AlertDelivery, *, now: datetime | None = None) -> AlertDelivery:
    """Send a webhook event again, as a new delivery of the same event (id, body) due now; a
    mail, or a delivery still being tried, raises CannotRedeliver."""
    if delivery.channel != DeliveryChannel.WEBHOOK:
        raise CannotRedeliver("Only webhook events are sent again; mails are sent once.")
    if delivery.status == DeliveryStatus.PENDING:
        raise CannotRedeliver("This delivery is still being tried: wait for it to succeed or give up.")
    now = now or timezone.now()
    return AlertDelivery.objects.create(
        tenant_id=delivery.tenant_id, alert_id=delivery.alert_id, channel=DeliveryChannel.WEBHOOK,
        event_id=delivery.event_id, event_type=delivery.event_type, payload=delivery.payload,
        next_attempt_at=now, redelivery_of=delivery, created_at=now)


async def send_alerts(*, now: datetime | None = None) -> str:
    """The periodic job (gateway/background.py): detect what reached a threshold, then send
    whatever is due."""
    recorded = await run_blocking(functools.partial(check_budget_alerts, now=now))
    tried = await deliver_due(now=now)
    return f"{len(recorded)} alert(s) recorded, {len(tried)} delivery attempt(s)"
