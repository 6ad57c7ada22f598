"""Spend alerts: at the thresholds a tenant chooses (default 50, 80 and 100 %) of each of its
budgets (billing/budgets.py; the monthly cap today), its owners and billing members get a mail
and, if it set one, its webhook a signed POST: once per threshold, budget and period.

    check_budget_alerts(now=)                the periodic job's detection: every budget with spend
                                             against its tenant's thresholds; the alerts recorded
    record_crossings(tenant_id, use, now=)   the same for one budget's use: the hook the settlement
                                             side may call (a read of the thresholds unless given,
                                             and SQL only for a threshold this process has not
                                             seen recorded)
    save_alert_settings(tenant, thresholds=, webhook_url=)   the dashboard's and the API's form
    parse_thresholds(text) / check_thresholds(values) / check_webhook_url(url)
                                             their validation (InvalidAlertSettings, with its field)
    rotate_webhook_secret(tenant)            a new signing secret, returned this once
    send_test_event(tenant)                  a "ping" event to the webhook

Once: a reached threshold is a BudgetAlert row whose unique constraint (tenant, budget,
threshold, period start) lets exactly one process insert it, and its deliveries (one mail, one
webhook POST: AlertDelivery rows) are inserted in the same transaction, to be sent by
billing/alert_delivery.py in the background process. Thresholds passed together (a jump from
40 % to 100 % between two checks) each get their row, but only the highest is sent. Nothing here
runs on the request path.
"""

import functools
import hashlib
import json
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from asgiref.sync import async_to_sync
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.alert_models import (
    DEFAULT_THRESHOLDS,
    AlertDelivery,
    AlertSettings,
    BudgetAlert,
    DeliveryChannel,
)
from billing.budgets import BudgetUse, budget_uses
from providers import encryption, outbound

log = logging.getLogger(__name__)

MAX_THRESHOLDS = 10
SUBJECT_CHARS = BudgetAlert._meta.get_field("subject").max_length
SUBJECT_HASH_CHARS = 16
WEBHOOK_URL_CHARS = AlertSettings._meta.get_field("webhook_url").max_length
SECRET_PREFIX = "tgwhsec_"
MONEY_SHOWN = Decimal("0.0001")
THRESHOLD_EVENT = "budget.threshold_reached"
PING_EVENT = "ping"

# Alerts this process has seen recorded (by itself or another): their SQL is skipped next time.
seen: set[tuple] = set()
SEEN_LIMIT = 100_000


class InvalidAlertSettings(Exception):
    """A threshold or webhook URL the form refuses; the message says what to change, ``field``
    which field it is about."""

    def __init__(self, message: str, *, field: str = "webhook_url"):
        super().__init__(message)
        self.field = field


# --- detection ----------------------------------------------------------------------------

def alert_subject(subject: str) -> str:
    """A budget's subject as its BudgetAlert rows keep it: whole when it fits the column, else cut
    and ended with a hash of the whole, so two long end user ids that share a beginning stay two
    budgets (an end user id may be longer than the column)."""
    if len(subject) <= SUBJECT_CHARS:
        return subject
    digest = hashlib.sha256(subject.encode()).hexdigest()[:SUBJECT_HASH_CHARS]
    return f"{subject[:SUBJECT_CHARS - SUBJECT_HASH_CHARS - 1]}~{digest}"


def alert_key(tenant_id: int, use: BudgetUse, threshold: int) -> tuple:
    budget = use.budget
    return tenant_id, budget.scope, alert_subject(budget.subject), budget.amount, budget.period, use.start, threshold


def thresholds_of(tenant_ids: list[int]) -> dict[int, list[int]]:
    """Each tenant's thresholds: its own, or the defaults for a tenant that never saved any."""
    chosen = dict(AlertSettings.objects.filter(tenant_id__in=tenant_ids).values_list("tenant_id", "thresholds"))
    return {tenant_id: chosen.get(tenant_id, list(DEFAULT_THRESHOLDS)) for tenant_id in tenant_ids}


def recorded_keys(tenant_ids: list[int], since: datetime) -> set[tuple]:
    rows = BudgetAlert.objects.filter(tenant_id__in=tenant_ids, period_start__gte=since).values_list(
        "tenant_id", "scope", "subject", "amount", "period", "period_start", "threshold")
    return set(rows)


def remember(key: tuple) -> None:
    if len(seen) >= SEEN_LIMIT:
        seen.clear()
    seen.add(key)


def check_budget_alerts(*, now: datetime | None = None) -> list[BudgetAlert]:
    """Every budget with spend this period against its tenant's thresholds (a few queries for all
    tenants, then SQL only for what newly reached a threshold); the alerts recorded."""
    now = now or timezone.now()
    uses = budget_uses(now)
    if not uses:
        return []
    tenant_ids = list(uses)
    thresholds = thresholds_of(tenant_ids)
    due = {tenant_id: [use for use in tenant_uses if unrecorded(tenant_id, use, thresholds[tenant_id])]
           for tenant_id, tenant_uses in uses.items()}
    due = {tenant_id: tenant_uses for tenant_id, tenant_uses in due.items() if tenant_uses}
    if not due:
        return []
    since = min(use.start for tenant_uses in due.values() for use in tenant_uses)
    for key in recorded_keys(list(due), since):
        remember(key)
    recorded = []
    for tenant_id, tenant_uses in due.items():
        for use in tenant_uses:
            recorded += insert_alerts(tenant_id, use, unrecorded(tenant_id, use, thresholds[tenant_id]), now)
    return recorded


def unrecorded(tenant_id: int, use: BudgetUse, thresholds: list[int]) -> list[int]:
    """The thresholds ``use`` has reached that this process has not seen recorded, highest first."""
    return sorted((t for t in thresholds if use.has_reached(t) and alert_key(tenant_id, use, t) not in seen),
                  reverse=True)


def record_crossings(tenant_id: int, use: BudgetUse, *, now: datetime | None = None,
                     thresholds: list[int] | None = None) -> list[BudgetAlert]:
    """The hook for one budget's use, e.g. right after a settlement: records (and queues the
    deliveries of) each threshold newly reached; the alerts recorded. Safe to call any number
    of times from any number of processes."""
    chosen = thresholds if thresholds is not None else thresholds_of([tenant_id])[tenant_id]
    reached = unrecorded(tenant_id, use, chosen)
    if not reached:
        return []
    for key in recorded_keys([tenant_id], use.start):
        remember(key)
    return insert_alerts(tenant_id, use, unrecorded(tenant_id, use, chosen), now or timezone.now())


@transaction.atomic
def insert_alerts(tenant_id: int, use: BudgetUse, reached: list[int], now: datetime) -> list[BudgetAlert]:
    """One row per threshold in ``reached`` (highest first) that no process has recorded yet;
    only the highest is sent, the others were passed on the way."""
    if not reached:
        return []
    inserted = []
    for threshold in reached:
        alert = BudgetAlert(tenant_id=tenant_id, scope=use.budget.scope, subject=alert_subject(use.budget.subject),
                            period=use.budget.period, period_start=use.start, threshold=threshold,
                            amount=use.budget.amount, spent=use.spent, notified=threshold == reached[0],
                            created_at=now)
        try:
            with transaction.atomic():
                alert.save()
        except IntegrityError:
            pass  # another process recorded it first: its deliveries are its own
        else:
            inserted.append(alert)
        # Once committed: a rolled-back insert must be tried again by this process.
        transaction.on_commit(functools.partial(remember, alert_key(tenant_id, use, threshold)))
    if inserted and inserted[0].notified:
        queue_deliveries(inserted[0], use, passed=[alert.threshold for alert in inserted], now=now)
    return inserted


# --- events and their deliveries ----------------------------------------------------------

def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def new_event(tenant_slug: str, event_type: str, data: dict, now: datetime) -> tuple[str, str]:
    """(event id, the JSON body the webhook gets and its signature covers)."""
    event_id = f"evt_{uuid.uuid4().hex}"
    body = {"id": event_id, "type": event_type, "created": iso(now), "tenant": tenant_slug, "data": data}
    return event_id, json.dumps(body, separators=(",", ":"))


def threshold_data(alert: BudgetAlert, use: BudgetUse, passed: list[int]) -> dict:
    budget = use.budget
    return {
        "budget": {"scope": budget.scope, "subject": budget.subject, "amount": str(budget.amount),
                   "period": budget.period, "label": use.label},
        "threshold": alert.threshold,
        "thresholds_passed": sorted(passed),
        "spent": str(use.spent.quantize(MONEY_SHOWN)),
        "period_start": iso(use.start),
        "period_end": iso(use.end),
    }


def queue_deliveries(alert: BudgetAlert, use: BudgetUse, *, passed: list[int], now: datetime) -> None:
    """A mail, and a webhook POST when the tenant has a webhook: one event, both due now."""
    settings = AlertSettings.objects.filter(tenant_id=alert.tenant_id).first()
    event_id, payload = new_event(alert.tenant.slug, THRESHOLD_EVENT, threshold_data(alert, use, passed), now)
    channels = [DeliveryChannel.MAIL]
    if settings is not None and has_webhook(settings):
        channels.append(DeliveryChannel.WEBHOOK)
    AlertDelivery.objects.bulk_create([
        AlertDelivery(tenant_id=alert.tenant_id, alert=alert, channel=channel, event_id=event_id,
                      event_type=THRESHOLD_EVENT, payload=payload, next_attempt_at=now, created_at=now)
        for channel in channels
    ])


def has_webhook(settings: AlertSettings) -> bool:
    return bool(settings.webhook_url and settings.webhook_secret_encrypted)


def send_test_event(tenant, *, now: datetime | None = None) -> AlertDelivery:
    """A "ping" event to the tenant's webhook, due now (InvalidAlertSettings without one)."""
    now = now or timezone.now()
    settings = AlertSettings.objects.filter(tenant=tenant).first()
    if settings is None or not has_webhook(settings):
        raise InvalidAlertSettings("Set a webhook URL first.")
    event_id, payload = new_event(tenant.slug, PING_EVENT, {"message": "A test event from Tollgate."}, now)
    return AlertDelivery.objects.create(tenant=tenant, channel=DeliveryChannel.WEBHOOK, event_id=event_id,
                                        event_type=PING_EVENT, payload=payload, next_attempt_at=now,
                                        created_at=now)


# --- settings -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SavedAlertSettings:
    settings: AlertSettings
    new_secret: str | None  # the raw signing secret when this save made one: shown this once


def parse_thresholds(text: str) -> list[int]:
    """ "50, 80, 100" -> [50, 80, 100] (the dashboard's field), checked by check_thresholds."""
    parts = [part.strip().rstrip("%").strip() for part in text.replace(";", ",").split(",") if part.strip()]
    try:
        return check_thresholds([int(part) for part in parts])
    except ValueError:
        raise InvalidAlertSettings("Thresholds are whole percentages separated by commas, e.g. 50, 80, 100.",
                                   field="thresholds") from None


def check_thresholds(values: list[int]) -> list[int]:
    """Whole percentages from 1 to 100, at most MAX_THRESHOLDS; sorted, each once."""
    if any(isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100 for value in values):
        raise InvalidAlertSettings("Each threshold is a whole percentage from 1 to 100.", field="thresholds")
    values = sorted(set(values))
    if len(values) > MAX_THRESHOLDS:
        raise InvalidAlertSettings(f"At most {MAX_THRESHOLDS} thresholds.", field="thresholds")
    return values


def check_webhook_url(url: str) -> None:
    """At most WEBHOOK_URL_CHARS, and the outbound-fetch policy's admission check (https, public
    addresses only), at save time; the policy is applied again, hop by hop, at every delivery."""
    if len(url) > WEBHOOK_URL_CHARS:
        raise InvalidAlertSettings(f"The webhook URL is longer than {WEBHOOK_URL_CHARS} characters; use a "
                                   "shorter one.")
    try:
        URLValidator(schemes=["https", "http"])(url)
        outbound.parts_of(url)
        async_to_sync(outbound.check_url)(url)
    except ValidationError:
        raise InvalidAlertSettings("The webhook URL is not a valid URL; use https://...") from None
    except outbound.UrlRefused as exc:
        raise InvalidAlertSettings(f"The webhook URL is refused: {exc}") from None


def save_alert_settings(tenant, *, thresholds: list[int], webhook_url: str) -> SavedAlertSettings:
    """Thresholds and the webhook URL ("" for none), checked by check_thresholds and the
    outbound-fetch policy (InvalidAlertSettings); a first webhook gets its signing secret here."""
    thresholds, webhook_url = check_thresholds(thresholds), webhook_url.strip()
    saved_url = AlertSettings.objects.filter(tenant=tenant).values_list("webhook_url", flat=True).first()
    if webhook_url and webhook_url != saved_url:  # an unchanged URL is checked again at each delivery
        check_webhook_url(webhook_url)  # resolves the host: before the transaction, not in it
    with transaction.atomic():
        settings, _ = AlertSettings.objects.select_for_update().get_or_create(tenant=tenant)
        settings.thresholds, settings.webhook_url = thresholds, webhook_url
        new_secret = set_secret(settings) if webhook_url and not settings.webhook_secret_encrypted else None
        settings.save()
    return SavedAlertSettings(settings, new_secret)


def set_secret(settings: AlertSettings) -> str:
    raw = SECRET_PREFIX + secrets.token_urlsafe(32)
    settings.webhook_secret_encrypted, settings.webhook_secret_hint = encryption.encrypt(raw), raw[-4:]
    return raw


@transaction.atomic
def rotate_webhook_secret(tenant) -> str:
    """A new signing secret, in force for the next attempt of every delivery; returned this once."""
    settings, _ = AlertSettings.objects.select_for_update().get_or_create(tenant=tenant)
    raw = set_secret(settings)
    settings.save(update_fields=["webhook_secret_encrypted", "webhook_secret_hint", "updated_at"])
    log.info("tenant %s: webhook signing secret rotated", tenant.pk)
    return raw


def webhook_secret_of(settings: AlertSettings) -> str:
    return encryption.decrypt(settings.webhook_secret_encrypted)
