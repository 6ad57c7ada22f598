"""A tenant admin gives its end users budgets under ``/api/tenants/<slug>/budgets/``; a request
for an end user (the body's ``user``, or x-tollgate-user) past its budget gets 429
insufficient_quota naming the end user and when the budget resets, whichever key sends it; other
end users, and requests for nobody, go on. Members read the budgets; outsiders find nothing."""

import pytest

from billing.budget_models import SpendBudget
from gateway.models import Role
from tests.test_key_budgets import NOW, ask, clock, refusal, spend  # noqa: F401 (clock: a fixture)
from tests.test_management_api_keys import add_member, management_key, signed_in, with_key

BUDGETS = "/api/tenants/alice-co/budgets/"


def create(browser, path: str = BUDGETS, **fields):
    return browser.post(path, fields, content_type="application/json")


def test_an_end_users_budget_stops_its_requests_from_any_key(client, sdk_for, api_key, tenant, fake_openai,
                                                             clock):  # noqa: F811
    admin = with_key(management_key(tenant))
    made = create(admin, end_user="user-4711", amount="0.02", period="month")
    assert made.status_code == 201, made.content
    assert made.json() | {"id": None, "period_start": None, "created_at": None, "updated_at": None} == {
        "id": None, "end_user": "user-4711", "amount": "0.02", "period": "month", "spent": "0.0000000000",
        "held": "0.0000000000", "remaining": "0.0200000000", "period_start": None,
        "resets_at": "2026-12-01T00:00:00Z", "created_at": None, "updated_at": None}

    spend(client, fake_openai, 1, user="user-4711")
    refused = refusal(client, user="user-4711")
    assert refused.body["message"].startswith(
        "You exceeded your current quota: end user 'user-4711' has a budget of $0.02 per month, $0.010025 of it "
        "is spent or held")
    assert "The budget resets at 2026-12-01 00:00 UTC" in refused.body["message"]
    header_user = sdk_for(api_key).with_options(default_headers={"x-tollgate-user": "user-4711"})
    refusal(header_user)  # named by the header, the same end user
    spend(client, fake_openai, 3, user="user-0815")  # another end user has no budget
    spend(client, fake_openai, 3)  # nor has a request for nobody

    listed = signed_in("alice@example.com").get(BUDGETS).json()
    assert [(row["end_user"], row["spent"], row["remaining"]) for row in listed] == [
        ("user-4711", "0.0100250000", "0.0099750000")]


def test_budgets_are_created_changed_and_removed_by_owners_and_admins(tenant, other_tenant):
    add_member(tenant, "bob@example.com", Role.MEMBER)
    add_member(tenant, "ada@example.com", Role.ADMIN)
    ada, bob = signed_in("ada@example.com"), signed_in("bob@example.com")
    made = create(ada, end_user="user-1", amount="5", period="day")
    assert made.status_code == 201 and made.json()["amount"] == "5.00"
    path = f"{BUDGETS}{made.json()['id']}/"
    again = create(ada, end_user="user-1", amount="7", period="day")
    assert again.status_code == 409 and "has a budget already" in again.json()["error"]["message"]

    assert bob.get(path).json()["end_user"] == "user-1"  # members read
    assert create(bob, end_user="user-2", amount="5", period="day").status_code == 403
    assert bob.patch(path, {"amount": "9"}, content_type="application/json").status_code == 403
    assert bob.delete(path).status_code == 403

    changed = ada.patch(path, {"amount": "7.50", "period": "week"}, content_type="application/json")
    assert (changed.json()["amount"], changed.json()["period"]) == ("7.50", "week")
    invalid = ada.patch(path, {"amount": "0"}, content_type="application/json")
    assert invalid.status_code == 400 and "amount" in invalid.json()["error"]["fields"]
    assert ada.delete(path).status_code == 204
    assert ada.get(path).status_code == 404 and not SpendBudget.objects.exists()


@pytest.mark.parametrize("fields", [{"end_user": "", "amount": "5", "period": "day"},
                                    {"end_user": "u", "amount": "5", "period": "fortnight"},
                                    {"end_user": "u", "amount": "-5", "period": "day"},
                                    {"end_user": "u" * 257, "amount": "5", "period": "day"}])
def test_a_budget_the_api_refuses_is_a_400(tenant, fields):
    answer = create(signed_in("alice@example.com"), **fields)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid"
    assert not SpendBudget.objects.exists()


def test_outsiders_find_no_budgets_and_their_own_are_apart(tenant, other_tenant):
    alices = create(signed_in("alice@example.com"), end_user="user-1", amount="5", period="day").json()
    charlies = create(with_key(management_key(other_tenant)), "/api/tenants/charlie-co/budgets/", end_user="user-1",
                      amount="1", period="day").json()  # an end user of the same name: Charlie's own
    for outsider in (signed_in("charlie@example.com"), with_key(management_key(other_tenant, "other"))):
        assert outsider.get(BUDGETS).status_code == 404
        assert outsider.get(f"{BUDGETS}{alices['id']}/").status_code == 404
        assert outsider.delete(f"{BUDGETS}{alices['id']}/").status_code == 404
        assert create(outsider, end_user="intruder", amount="1", period="day").status_code == 404
    alice = signed_in("alice@example.com")
    assert alice.get(f"{BUDGETS}{charlies['id']}/").status_code == 404  # nor Alice Charlie's
    assert alice.patch(f"{BUDGETS}{charlies['id']}/", {"amount": "9"},
                       content_type="application/json").status_code == 404
    assert [row["amount"] for row in alice.get(BUDGETS).json()] == ["5.00"]
    assert SpendBudget.objects.get(tenant=other_tenant).amount == 1
