"""The credit ledger: append-only, its balance always the sum of its entries (also after
concurrent writers), usage debited once per period, operators' adjustments with a reason."""

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import DatabaseError, IntegrityError, connection, connections, transaction
from django.test import Client

from billing import credits
from billing.models import CreditEntry, CreditEntryKind, LedgerIsAppendOnly

HOUR = datetime(2026, 11, 2, 10, tzinfo=UTC)


def periods(start: datetime, count: int):
    return [(start + timedelta(minutes=i), start + timedelta(minutes=i + 1)) for i in range(count)]


def test_balance_equals_the_ledger_sum_after_concurrent_writers(tenant, other_tenant):
    credits.adjust_credits(tenant.pk, Decimal("100"), reason="opening balance")
    start = threading.Barrier(5)
    errors = []

    def adjust(sign: int):
        try:
            start.wait()
            for _ in range(10):
                credits.adjust_credits(tenant.pk, Decimal("1.0001") * sign, reason="test")
        except Exception as exc:  # reported below: a thread's assertion would be lost
            errors.append(exc)
        finally:
            connections.close_all()

    def spend():
        try:
            start.wait()
            for period_start, period_end in periods(HOUR, 10):
                credits.debit_usage(tenant.pk, Decimal("0.0123456789"), period_start=period_start,
                                    period_end=period_end)
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=adjust, args=(sign,)) for sign in (1, 1, -1, -1)]
    threads.append(threading.Thread(target=spend))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    expected = Decimal("100") - 10 * Decimal("0.0123456789")
    assert credits.balance(tenant.pk) == credits.ledger_balance(tenant.pk) == expected
    assert CreditEntry.objects.filter(tenant=tenant).count() == 1 + 40 + 10
    assert CreditEntry.objects.filter(tenant=tenant).first().balance_after == expected  # the newest entry
    assert credits.balance(other_tenant.pk) == 0 and not CreditEntry.objects.filter(tenant=other_tenant).exists()


def test_entries_are_never_changed_or_deleted(tenant, other_tenant):
    entry = credits.adjust_credits(tenant.pk, Decimal("5"), reason="goodwill")
    entry.amount = Decimal("500")
    with pytest.raises(LedgerIsAppendOnly):
        entry.save()
    with pytest.raises(LedgerIsAppendOnly):
        entry.delete()
    with pytest.raises(LedgerIsAppendOnly):
        CreditEntry.objects.filter(tenant=tenant).update(amount=Decimal("500"))
    with pytest.raises(LedgerIsAppendOnly):
        CreditEntry.objects.filter(tenant=tenant).delete()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE billing_creditentry SET amount = 500")
    # The database refuses money in the wrong direction and adjustments without a reason.
    for kind, amount, reason in [(CreditEntryKind.PURCHASE, "-5", "x"), (CreditEntryKind.USAGE, "5", "x"),
                                 (CreditEntryKind.ADJUSTMENT, "5", "")]:
        with pytest.raises(IntegrityError), transaction.atomic():
            CreditEntry.objects.create(tenant=tenant, kind=kind, amount=Decimal(amount), balance_after=0,
                                       reason=reason)
    assert credits.balance(tenant.pk) == credits.ledger_balance(tenant.pk) == Decimal("5")
    assert credits.balance(other_tenant.pk) == 0
    # A deleted tenant takes its ledger with it.
    credits.adjust_credits(other_tenant.pk, Decimal("3"), reason="trial")
    other_tenant.delete()
    assert list(CreditEntry.objects.values_list("tenant_id", flat=True)) == [tenant.pk]


def test_usage_is_debited_once_per_period(tenant, other_tenant):
    credits.adjust_credits(tenant.pk, Decimal("10"), reason="opening balance")
    first = credits.debit_usage(tenant.pk, Decimal("1.25"), period_start=HOUR, period_end=HOUR + timedelta(hours=1))
    again = credits.debit_usage(tenant.pk, Decimal("1.25"), period_start=HOUR, period_end=HOUR + timedelta(hours=1))
    assert again == first and first.amount == Decimal("-1.25")
    with pytest.raises(ValueError, match="overlaps"):
        credits.debit_usage(tenant.pk, Decimal("1"), period_start=HOUR + timedelta(minutes=30),
                            period_end=HOUR + timedelta(hours=2))
    quiet = credits.debit_usage(tenant.pk, Decimal("0"), period_start=HOUR + timedelta(hours=1),
                                period_end=HOUR + timedelta(hours=2))
    assert quiet is None
    credits.debit_usage(tenant.pk, Decimal("0.5"), period_start=HOUR + timedelta(hours=2),
                        period_end=HOUR + timedelta(hours=3))
    assert credits.balance(tenant.pk) == credits.ledger_balance(tenant.pk) == Decimal("8.25")
    assert CreditEntry.objects.filter(tenant=tenant, kind=CreditEntryKind.USAGE).count() == 2
    # Charlie's first period may be any: Alice's periods are hers.
    credits.debit_usage(other_tenant.pk, Decimal("1"), period_start=HOUR, period_end=HOUR + timedelta(hours=1))
    assert credits.balance(other_tenant.pk) == Decimal("-1")


def test_operator_adjusts_credits_in_the_admin_with_a_reason(tenant, other_tenant):
    operator = get_user_model().objects.create_superuser("op", "op@example.com", "pw-for-tests-only")
    admin = Client()
    admin.force_login(operator)
    assert admin.get("/admin/billing/creditentry/add/").status_code == 200
    without_reason = admin.post("/admin/billing/creditentry/add/", {"tenant": tenant.pk, "amount": "12.50",
                                                                     "reason": ""})
    assert without_reason.status_code == 200 and "This field is required" in without_reason.content.decode()
    zero = admin.post("/admin/billing/creditentry/add/", {"tenant": tenant.pk, "amount": "0", "reason": "x"})
    assert "zero changes nothing" in zero.content.decode()
    assert not CreditEntry.objects.exists()

    added = admin.post("/admin/billing/creditentry/add/", {"tenant": tenant.pk, "amount": "12.50",
                                                            "reason": "outage credit, ticket 42"})
    assert added.status_code == 302, added.content.decode()[:2000]
    [entry] = CreditEntry.objects.all()
    assert (entry.tenant_id, entry.kind, entry.amount, entry.reason, entry.actor) == (
        tenant.pk, "adjustment", Decimal("12.50"), "outage credit, ticket 42", "op")
    assert credits.balance(tenant.pk) == Decimal("12.50")
    assert admin.post(f"/admin/billing/creditentry/{entry.pk}/change/", {"amount": "99", "reason": "x"}
                      ).status_code == 403
    assert admin.post(f"/admin/billing/creditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    for page in ("creditentry", "creditaccount", "autotopup"):
        assert admin.get(f"/admin/billing/{page}/", {"q": "alice"}).status_code == 200
    for page in ("creditaccount", "autotopup"):
        assert admin.get(f"/admin/billing/{page}/add/").status_code == 403
    assert credits.balance(tenant.pk) == Decimal("12.50") and credits.balance(other_tenant.pk) == 0
    operator.delete()  # the ledger keeps who it was
    assert CreditEntry.objects.get().actor == "op"
