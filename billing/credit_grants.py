"""Credits a plan includes each month (Plan.monthly_credits): one ``grant`` entry per tenant and
calendar month (UTC), dated the month's first instant, added to the tenant's credit ledger like
bought credits (billing/credits.py append_entry).

    grant_monthly_credits(now=)   every subscription whose plan includes credits and whose tenant
                                  has no grant for the month yet gets one; the entries made

Exactly once per tenant and month, whoever runs it and however often: the ledger refuses a second
grant for the same month (the one_plan_grant_per_month constraint) and the account row is locked
while the entry is written. A tenant that joins such a plan mid-month gets the month's grant on the
next run (``manage.py run_background`` runs it every CREDIT_GRANT_SECONDS, and a plan change runs
it for that tenant at once). Included credits do not expire: unused, they are there next month.
"""

import logging
from datetime import UTC, datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import credits
from billing.models import CreditEntry, CreditEntryKind, Subscription

log = logging.getLogger(__name__)


def month_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def grant_monthly_credits(*, now: datetime | None = None, tenant_id: int | None = None) -> list[CreditEntry]:
    """This month's grants not yet made (of ``tenant_id`` only, when given)."""
    start = month_start(now or timezone.now())
    granted = CreditEntry.objects.filter(kind=CreditEntryKind.GRANT, period_start=start).values("tenant_id")
    due = Subscription.objects.filter(plan__monthly_credits__gt=0).exclude(tenant_id__in=granted)
    if tenant_id is not None:
        due = due.filter(tenant_id=tenant_id)
    made = []
    for tenant_id, plan_name, amount in due.values_list("tenant_id", "plan__name", "plan__monthly_credits"):
        entry = grant(tenant_id, amount, start, plan_name)
        if entry is not None:
            made.append(entry)
    return made


def grant(tenant_id: int, amount, start: datetime, plan_name: str) -> CreditEntry | None:
    try:
        with transaction.atomic():
            account = credits.lock_account(tenant_id)
            entry = credits.append_entry(account, CreditEntryKind.GRANT, amount, period_start=start,
                                         reason=f"Included in plan {plan_name} for {start:%B %Y}")
    except IntegrityError:  # granted meanwhile (another run): once is all
        return None
    log.info("tenant %s: %s USD of credits included in plan %s for %s", tenant_id, amount, plan_name,
             f"{start:%Y-%m}")
    return entry
