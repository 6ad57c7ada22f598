"""Budgets on the dashboard: an owner or admin sets a key's budget in its row on the keys page and
end users' budgets on the budgets page, and everyone sees them with what the current period has
spent; members cannot change them, and Charlie (another tenant) never sees or touches Alice's."""

import re

from billing.budget_models import SpendBudget
from gateway.models import ApiKey, Role
from tests.conftest import add_member, signed_in
from tests.test_key_budgets import clock, refusal, spend  # noqa: F401 (clock: a fixture)


def row_of(page, testid: str) -> str:
    found = re.search(rf'<tr data-testid="{re.escape(testid)}".*?</tr>', page.content.decode(), re.S)
    return found.group(0) if found else ""


def test_an_owner_sets_a_keys_budget_on_the_keys_page(client, tenant, other_tenant, fake_openai,
                                                     clock):  # noqa: F811
    laptop = ApiKey.objects.get(tenant=tenant, name="alice laptop")
    alice = signed_in("alice@example.com")
    saved = alice.post(f"/t/alice-co/keys/{laptop.pk}/budget/", {"amount": "0.02", "period": "day"}, follow=True)
    assert "Key alice laptop: a budget of $0.02 per day." in saved.content.decode()
    spend(client, fake_openai, 1)
    refusal(client)
    row = row_of(alice.get("/t/alice-co/keys/"), "key-alice laptop")
    assert "$0.02 per day · $0.0100 spent · resets 2026-11-21 00:00 UTC" in row

    refused = alice.post(f"/t/alice-co/keys/{laptop.pk}/budget/", {"amount": "lots", "period": "day"}, follow=True)
    assert "Key alice laptop: The amount is a number of USD" in refused.content.decode()
    removed = alice.post(f"/t/alice-co/keys/{laptop.pk}/budget/", {"remove": "1"}, follow=True)
    assert "Key alice laptop: no budget." in removed.content.decode()
    assert "none" in row_of(removed, "key-alice laptop") and not SpendBudget.objects.exists()


def test_end_users_budgets_page_adds_changes_and_removes(tenant, other_tenant, clock):  # noqa: F811
    alice = signed_in("alice@example.com")
    added = alice.post("/t/alice-co/budgets/", {"end_user": "user-4711", "amount": "5", "period": "week"}, follow=True)
    assert "End user user-4711: a budget of $5.00 per week." in added.content.decode()
    row = row_of(added, "budget-user-4711")
    assert "$5.00 per week" in row and "$0.0000" in row and "2026-11-23 00:00 UTC" in row
    changed = alice.post("/t/alice-co/budgets/", {"end_user": "user-4711", "amount": "7.50", "period": "day"},
                         follow=True)
    assert "$7.50 per day" in row_of(changed, "budget-user-4711")
    assert SpendBudget.objects.get(tenant=tenant).amount == 7.5
    invalid = alice.post("/t/alice-co/budgets/", {"end_user": "user-1", "amount": "0", "period": "day"})
    assert invalid.status_code == 400 and "The amount is from $0.01" in invalid.content.decode()

    budget = SpendBudget.objects.get(tenant=tenant)
    removed = alice.post(f"/t/alice-co/budgets/{budget.pk}/remove/", follow=True)
    assert "End user user-4711: no budget." in removed.content.decode()
    assert not SpendBudget.objects.exists()


def test_members_see_budgets_and_outsiders_find_nothing(tenant, other_tenant, api_key):
    laptop = ApiKey.objects.get(tenant=tenant, name="alice laptop")
    alice = signed_in("alice@example.com")
    alice.post("/t/alice-co/budgets/", {"end_user": "user-1", "amount": "5", "period": "day"})
    budget = SpendBudget.objects.get(tenant=tenant)
    add_member(tenant, "bob@example.com", Role.MEMBER)
    bob = signed_in("bob@example.com")
    page = bob.get("/t/alice-co/budgets/")
    assert page.status_code == 200 and "user-1" in page.content.decode()
    assert 'id="budget-form"' not in page.content.decode()
    assert bob.post("/t/alice-co/budgets/", {"end_user": "u", "amount": "1", "period": "day"}).status_code == 403
    assert bob.post(f"/t/alice-co/budgets/{budget.pk}/remove/").status_code == 403
    assert bob.post(f"/t/alice-co/keys/{laptop.pk}/budget/", {"amount": "1", "period": "day"}).status_code == 403

    charlie = signed_in("charlie@example.com")
    assert charlie.get("/t/alice-co/budgets/").status_code == 404
    assert charlie.post(f"/t/alice-co/budgets/{budget.pk}/remove/").status_code == 404
    assert charlie.post(f"/t/alice-co/keys/{laptop.pk}/budget/", {"amount": "1", "period": "day"}).status_code == 404
    assert charlie.post(f"/t/charlie-co/budgets/{budget.pk}/remove/").status_code == 404  # not in his tenant
    assert "user-1" not in charlie.get("/t/charlie-co/budgets/").content.decode()
    assert list(SpendBudget.objects.values_list("subject", "amount")) == [("user-1", 5)]
