"""Prepaid credits: the ledger every cent moves through, and the auto top-up that refills it.

    balance(tenant_id)                          the balance (cached row; equal to the ledger's sum)
    ledger_balance(tenant_id)                   the same, summed from the entries
    debit_usage(tenant_id, amount, ...)         one usage entry per settled period, idempotent
    credit_payment(tenant_id, payment, ...)     a succeeded PaymentIntent's money, exactly once
    record_refund(tenant_id, refund)            a refund made in Stripe, exactly once
    adjust_credits(tenant_id, amount, ...)      an operator's correction, with a reason
    top_up_if_low(tenant_id)                    charge the saved card, once per threshold crossing
                                                (of what is left: balance less settled, undebited usage)
    resend_pending_top_ups() / top_up_low_balances()   the periodic job (manage.py top_up_credits)

Every entry goes through append_entry(), holding the tenant's CreditAccount row lock: the entry
and the cached balance move in one transaction, so balance == sum(entries) at every commit.
Only the auto top-up calls Stripe, and never inside a transaction.
"""

import logging
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.utils import timezone

from billing import stripe_api, stripe_payments
from billing.models import (
    AutoTopUp,
    CreditAccount,
    CreditEntry,
    CreditEntryKind,
    Subscription,
    TopUpStatus,
)
from billing.stripe_api import BillingNotConfigured, CardDeclined, StripeRefused, StripeUnavailable
from billing.stripe_payments import RemotePayment, RemoteRefund

log = logging.getLogger(__name__)

# Stripe keeps an idempotency key's answer for 24 hours; a charge still unanswered after this is
# left to the payment_intent webhooks and an operator, never sent again under a stale key.
RESEND_WITHIN = timedelta(hours=23)
# What the balance is below when the credits left (balance less settled usage not yet debited:
# billing/credit_debits.py) are below the auto top-up threshold.
BELOW_THRESHOLD = F("top_up_threshold") + F("spent_undebited")
# Statuses after which an off-session charge will not succeed without the customer.
FAILED_PAYMENT_STATUSES = {"requires_payment_method", "requires_action", "canceled"}


# --- the ledger ---------------------------------------------------------------------------

def balance(tenant_id: int) -> Decimal:
    """The tenant's credits in USD (0 without an account). One indexed read."""
    found = CreditAccount.objects.filter(tenant_id=tenant_id).values_list("balance", flat=True).first()
    return Decimal(found) if found is not None else Decimal(0)


def ledger_balance(tenant_id: int) -> Decimal:
    # Summed here, not by SUM(): SQLite adds decimals as floats.
    return sum(CreditEntry.objects.filter(tenant_id=tenant_id).values_list("amount", flat=True), Decimal(0))


def lock_account(tenant_id: int) -> CreditAccount:
    """The tenant's account row, created when missing and locked. Inside a transaction only."""
    CreditAccount.objects.get_or_create(tenant_id=tenant_id)
    return CreditAccount.objects.select_for_update().get(tenant_id=tenant_id)


def append_entry(account: CreditAccount, kind: str, amount: Decimal, **fields) -> CreditEntry:
    """The one writer of the ledger; ``account`` locked by the caller's transaction. An entry
    whose Stripe id or usage period is in the ledger already raises IntegrityError."""
    new_balance = account.balance + amount
    entry = CreditEntry.objects.create(tenant_id=account.tenant_id, kind=kind, amount=amount,
                                       balance_after=new_balance, **fields)
    changes = {"balance": new_balance, "updated_at": timezone.now()}
    if new_balance - account.spent_undebited >= account.top_up_threshold:
        changes["top_up_armed"] = True  # back at the threshold: the next fall below is a new crossing
    CreditAccount.objects.filter(pk=account.pk).update(**changes)
    account.balance = new_balance
    return entry


@transaction.atomic
def debit_usage(tenant_id: int, amount: Decimal, *, period_start: datetime, period_end: datetime) -> CreditEntry | None:
    """Spend ``amount`` USD, the settled cost of the tenant's usage in [period_start, period_end).

    Idempotent per period: a period that ends at or before the last one debited changes nothing
    (its entry, if any, is returned), so a retried settlement never debits twice; a period that
    starts inside the debited range but ends after it raises ValueError. A zero amount writes no
    entry but moves ``debited_through``. No network: safe inside the settlement's transaction.
    """
    if amount < 0 or period_end <= period_start:
        raise ValueError(f"debit_usage needs amount >= 0 and a period that ends after it starts, "
                         f"not {amount} over {period_start}..{period_end}")
    account = lock_account(tenant_id)
    through = account.debited_through
    if through is not None and period_end <= through:
        return CreditEntry.objects.filter(tenant_id=tenant_id, kind=CreditEntryKind.USAGE, period_start=period_start,
                                          period_end=period_end).first()
    if through is not None and period_start < through:
        raise ValueError(f"tenant {tenant_id}: usage up to {through} is debited already; "
                         f"a period from {period_start} overlaps it")
    entry = None
    if amount:
        entry = append_entry(account, CreditEntryKind.USAGE, -amount, period_start=period_start,
                             period_end=period_end, reason=f"Usage {period_start:%Y-%m-%d %H:%M}–{period_end:%H:%M} UTC")
    CreditAccount.objects.filter(pk=account.pk).update(debited_through=period_end)
    return entry


def credit_payment(tenant_id: int, payment: RemotePayment, *, kind: str, checkout_session_id: str = "",
                   reason: str = "") -> CreditEntry | None:
    """Credit what a succeeded PaymentIntent received, once: None when it has not succeeded or
    is in the ledger already (the unique PaymentIntent id decides, whichever of the Checkout
    webhook, the PaymentIntent webhook or the charging call comes first)."""
    if payment.status != "succeeded" or payment.currency != stripe_payments.CURRENCY or payment.amount_received <= 0:
        return None
    try:
        with transaction.atomic():
            entry = append_entry(
                lock_account(tenant_id), kind, stripe_payments.dollars(payment.amount_received), reason=reason,
                stripe_payment_intent_id=payment.id, stripe_checkout_session_id=checkout_session_id,
                receipt_url=payment.receipt_url)
            if kind == CreditEntryKind.TOP_UP:
                AutoTopUp.objects.filter(tenant_id=tenant_id, crossing=crossing_of(payment)).exclude(
                    status=TopUpStatus.SUCCEEDED).update(status=TopUpStatus.SUCCEEDED,
                                                         stripe_payment_intent_id=payment.id, failure="")
    except IntegrityError:
        return None
    log.info("tenant %s: +%s credits (%s, %s)", tenant_id, entry.amount, kind, payment.id)
    return entry


def record_refund(tenant_id: int, refund: RemoteRefund) -> CreditEntry | None:
    """Take back the credits of a succeeded refund, once (the unique refund id decides)."""
    if refund.status != "succeeded" or refund.amount <= 0:
        return None
    try:
        with transaction.atomic():
            return append_entry(lock_account(tenant_id), CreditEntryKind.REFUND, -stripe_payments.dollars(refund.amount),
                                stripe_refund_id=refund.id, stripe_payment_intent_id=refund.payment_intent_id,
                                reason="Refunded in Stripe")
    except IntegrityError:
        return None


def adjust_credits(tenant_id: int, amount: Decimal, *, reason: str, actor: str = "") -> CreditEntry:
    """An operator (``actor``, a username) adds (positive) or removes (negative) credits; the
    reason is kept with it."""
    reason = reason.strip()
    if not reason:
        raise ValueError("An adjustment needs a reason.")
    if not amount:
        raise ValueError("An adjustment of zero changes nothing.")
    with transaction.atomic():
        return append_entry(lock_account(tenant_id), CreditEntryKind.ADJUSTMENT, amount, reason=reason[:300],
                            actor=actor[:254])


# --- auto top-up -----------------------------------------------------------------------------

def crossing_of(payment: RemotePayment) -> int:
    value = str(payment.metadata.get("crossing") or "")
    return int(value) if value.isdigit() else 0


def top_up_if_low(tenant_id: int) -> AutoTopUp | None:
    """When the balance is below the tenant's threshold, charge its saved card the set amount,
    at most once per threshold crossing however many processes call this at once.

    Calls Stripe: never inside a transaction, never on the request path. None when nothing was
    due; else the attempt: succeeded (credited), declined (the card was: auto top-up is off and
    the owners and billing members are mailed) or pending (Stripe unreachable or refusing our
    request, or the payment still processing: resend_pending_top_ups() and the payment_intent
    webhooks finish it).
    """
    if not stripe_api.is_configured():
        return None
    attempt = claim_crossing(tenant_id)
    if attempt is None:
        return None
    charge(attempt)
    attempt.refresh_from_db()
    return attempt


@transaction.atomic
def claim_crossing(tenant_id: int) -> AutoTopUp | None:
    # The conditional UPDATE is the lock: of concurrent callers exactly one turns the armed flag
    # off (PostgreSQL re-checks the WHERE after waiting on the row; SQLite runs one at a time).
    claimed = (CreditAccount.objects
               .filter(tenant_id=tenant_id, auto_top_up=True, top_up_armed=True, balance__lt=BELOW_THRESHOLD)
               .exclude(stripe_payment_method_id="")
               .update(top_up_armed=False, top_up_crossings=F("top_up_crossings") + 1, updated_at=timezone.now()))
    if not claimed:
        return None
    account = CreditAccount.objects.get(tenant_id=tenant_id)
    # The card is the attempt's own, so every send of it charges the card the first send did
    # (Stripe refuses a key sent again with other parameters), even after a new card is saved.
    return AutoTopUp.objects.create(
        tenant_id=tenant_id, crossing=account.top_up_crossings, amount=account.top_up_amount,
        stripe_payment_method_id=account.stripe_payment_method_id,
        # Random as well: a key Stripe saw from another database (a reset test account) must not replay.
        idempotency_key=f"tollgate-top-up-{tenant_id}-{account.top_up_crossings}-{uuid.uuid4().hex[:12]}")


def charge(attempt: AutoTopUp) -> None:
    """Send (or resend, with the same key and parameters) the attempt's charge and act on the answer."""
    customer_id = Subscription.objects.filter(tenant_id=attempt.tenant_id).values_list(
        "stripe_customer_id", flat=True).first() or ""
    try:
        payment = stripe_payments.charge_saved_card(
            customer_id=customer_id, payment_method_id=attempt.stripe_payment_method_id, amount=attempt.amount,
            metadata={"tenant_id": str(attempt.tenant_id), "purpose": "top_up", "crossing": str(attempt.crossing)},
            idempotency_key=attempt.idempotency_key)
    except CardDeclined as exc:
        stop_auto_top_up(attempt, failure=str(exc), payment_intent_id=exc.payment_intent_id)
        return
    except (StripeUnavailable, BillingNotConfigured) as exc:
        log.warning("auto top-up %s not sent (%s); resent later with the same key", attempt.idempotency_key, exc)
        AutoTopUp.objects.filter(pk=attempt.pk).update(updated_at=timezone.now())
        return
    except StripeRefused as exc:
        keep_for_resend(attempt, exc)
        return
    settle_top_up(attempt, payment)


def keep_for_resend(attempt: AutoTopUp, refused: StripeRefused) -> None:
    """Stripe refused our request, not the card (a wrong or restricted key, a customer or card it
    does not know, a parameter it rejects): the customer can do nothing about it, so auto top-up
    stays on and nobody is mailed; the attempt stays pending, resent until the operator has
    fixed what the log says or a day has passed."""
    failure = f"Stripe refused the request: {refused}"[:300]
    AutoTopUp.objects.filter(pk=attempt.pk, status=TopUpStatus.PENDING).update(failure=failure,
                                                                             updated_at=timezone.now())
    log.error("tenant %s: auto top-up %s refused by Stripe (%s: %s); auto top-up stays on and the charge is "
              "resent with the same key: check the Stripe settings", attempt.tenant_id, attempt.idempotency_key,
              type(refused.__cause__ or refused).__name__, refused)


def settle_top_up(attempt: AutoTopUp, payment: RemotePayment) -> None:
    """Act on a top-up's PaymentIntent as Stripe holds it (the charging call or a webhook)."""
    if payment.status == "succeeded":
        credit_payment(attempt.tenant_id, payment, kind=CreditEntryKind.TOP_UP, reason="Auto top-up")
    elif payment.status in FAILED_PAYMENT_STATUSES:
        stop_auto_top_up(attempt, failure=payment.failure or f"the payment is {payment.status}",
                         payment_intent_id=payment.id)
    else:  # processing: payment_intent.succeeded or .payment_failed arrives later
        AutoTopUp.objects.filter(pk=attempt.pk, status=TopUpStatus.PENDING).update(
            stripe_payment_intent_id=payment.id, updated_at=timezone.now())


@transaction.atomic
def stop_auto_top_up(attempt: AutoTopUp, *, failure: str, payment_intent_id: str = "") -> None:
    """A declined charge: the attempt failed, auto top-up is off until a billing manager turns it
    on again (a declined card is not tried again and again), and the owners are mailed once."""
    failure = failure[:300]
    marked = AutoTopUp.objects.filter(pk=attempt.pk, status=TopUpStatus.PENDING).update(
        status=TopUpStatus.DECLINED, failure=failure,
        stripe_payment_intent_id=payment_intent_id or F("stripe_payment_intent_id"), updated_at=timezone.now())
    if not marked:
        return  # the webhook or a resend got here first
    CreditAccount.objects.filter(tenant_id=attempt.tenant_id).update(
        auto_top_up=False, top_up_stopped_reason=failure, top_up_stopped_at=timezone.now(), updated_at=timezone.now())
    log.warning("tenant %s: auto top-up %s declined (%s); auto top-up is off", attempt.tenant_id,
                attempt.idempotency_key, failure)
    transaction.on_commit(lambda: mail_top_up_stopped(attempt.tenant_id, attempt.amount, failure))


def billing_contacts(tenant_id: int) -> list[str]:
    # Billing sits below tenancy, so it reads memberships through the user model and names the
    # roles by value (gateway.models.BILLING_MANAGERS).
    users = get_user_model().objects.filter(memberships__tenant_id=tenant_id, is_active=True,
                                            memberships__role__in=["owner", "billing"])
    return sorted(set(users.exclude(email="").values_list("email", flat=True)))


def mail_top_up_stopped(tenant_id: int, amount: Decimal, failure: str) -> None:
    account = CreditAccount.objects.select_related("tenant").get(tenant_id=tenant_id)
    recipients = billing_contacts(tenant_id)
    if not recipients:
        return
    context = {"tenant": account.tenant, "amount": amount, "failure": failure, "balance": account.balance,
               "link": f"{settings.PUBLIC_BASE_URL.rstrip('/')}/t/{account.tenant.slug}/billing/"}
    try:
        send_mail(subject=f"Auto top-up stopped for {account.tenant.name}: the card was declined",
                  message=render_to_string("billing/email/top_up_stopped.txt", context), from_email=None,
                  recipient_list=recipients)
    except Exception:  # the state is committed; a mail server down must not hide that
        log.exception("tenant %s: the auto top-up mail could not be sent", tenant_id)


def resend_pending_top_ups(*, now: datetime | None = None, min_age: timedelta = timedelta(minutes=1)) -> int:
    """Send again, with their keys, the charges whose answer was lost (Stripe unreachable, the
    process gone): Stripe answers with the PaymentIntent it made, if it made one, so a card
    is charged once. Returns how many were sent."""
    now = now or timezone.now()
    pending = AutoTopUp.objects.filter(status=TopUpStatus.PENDING, updated_at__lte=now - min_age)
    sent = 0
    for attempt in pending.order_by("created_at"):
        if attempt.created_at <= now - RESEND_WITHIN:
            log.error("auto top-up %s unanswered for a day: check it in Stripe", attempt.idempotency_key)
            continue
        charge(attempt)
        sent += 1
    return sent


def top_up_low_balances() -> list[AutoTopUp]:
    """top_up_if_low() for every account that looks due (a safety net beside the settlement's calls)."""
    due = (CreditAccount.objects.filter(auto_top_up=True, top_up_armed=True, balance__lt=BELOW_THRESHOLD)
           .exclude(stripe_payment_method_id="").values_list("tenant_id", flat=True))
    return [attempt for tenant_id in list(due) if (attempt := top_up_if_low(tenant_id)) is not None]
