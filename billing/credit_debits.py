"""Prepaid credits drawn down. Admission holds each request's most cost on its tenant's credits
and settlement moves its actual cost to CreditAccount.spent_undebited (billing/spend_holds.py), so
what a tenant may still spend (balance - spent_undebited - reserved) is exact at every request;
this turns that settled spend into the credit ledger's usage entries, and tops up what ran low.

    debit_settled_usage(now=)   one usage entry per account with settled spend not yet debited,
                                over [its last debit's end, now): exactly that spend, taken off
                                spent_undebited in the entry's transaction (billing.credits.debit_usage)
    top_up_low_accounts()       billing.credits.top_up_if_low() for each account that looks due,
                                after the debits and outside any transaction (it calls Stripe)

Both run in the background process as periodic jobs (gateway/background.py), each once per
period across the fleet; a second run at once would find nothing left to debit: the account's row
lock orders it after the first, and settlements that commit meanwhile count in the next period.
"""

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F, Min
from django.utils import timezone

from billing import credits, stripe_api
from billing.models import AutoTopUp, CreditAccount, CreditEntry

log = logging.getLogger(__name__)

FIRST_PERIOD = timedelta(hours=1)  # an account never debited: its first period starts at its first entry


def debit_settled_usage(*, now: datetime | None = None) -> list[CreditEntry]:
    """Debit every account's settled, undebited spend; the entries written."""
    now = now or timezone.now()
    due = CreditAccount.objects.filter(spent_undebited__gt=0).values_list("tenant_id", flat=True)
    entries = []
    for tenant_id in list(due):
        try:
            entry = debit_account(tenant_id, now)
        except Exception:  # one account's failure must not keep the others' spend undebited
            log.exception("tenant %s: settled credit usage could not be debited; trying again next period",
                          tenant_id)
            continue
        if entry is not None:
            entries.append(entry)
    return entries


@transaction.atomic
def debit_account(tenant_id: int, now: datetime) -> CreditEntry | None:
    account = credits.lock_account(tenant_id)
    amount, start = account.spent_undebited, account.debited_through or first_entry_at(tenant_id, now)
    if amount <= 0 or start >= now:
        return None
    # Off spent_undebited first: debit_usage re-reads the locked row, so the entry's balance and
    # the top-up's re-arming see the spend once, not twice.
    CreditAccount.objects.filter(pk=account.pk).update(spent_undebited=F("spent_undebited") - amount)
    entry = credits.debit_usage(tenant_id, amount, period_start=start, period_end=now)
    log.info("tenant %s: %s USD of settled usage debited from credits", tenant_id, amount)
    return entry


def first_entry_at(tenant_id: int, now: datetime) -> datetime:
    first = CreditEntry.objects.filter(tenant_id=tenant_id).aggregate(first=Min("created_at"))["first"]
    return now - FIRST_PERIOD if first is None else min(first, now)


def top_up_low_accounts() -> list[AutoTopUp]:
    """Charges lost on the way sent again, then every account below its threshold topped up once
    per crossing (billing.credits); never inside a transaction."""
    if not stripe_api.is_configured():
        return []
    credits.resend_pending_top_ups()
    return credits.top_up_low_balances()
