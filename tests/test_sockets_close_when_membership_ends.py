"""Open dashboard sockets follow the membership: once a member is removed, or their role may no
longer open the page, the playground closes on their next message and live usage before its next
push (close code 4403). Their sockets on Charlie's tenant, where they are still a member, stay open."""

import pytest
from websockets.exceptions import ConnectionClosed

from gateway.models import Membership, Role
from tests.conftest import add_member
from tests.test_live_usage import open_socket, session_cookie
from tests.test_management_api_keys import signed_in
from tests.test_playground import open_playground, receive, receive_until, run
from usage.models import UsageRecord

BOB = "bob@example.com"


def member_of_both(tenant, other_tenant) -> Membership:
    """Bob: a member of Alice's tenant, and of Charlie's too."""
    bob = add_member(tenant, BOB, Role.MEMBER)
    Membership.objects.create(tenant=other_tenant, user=bob.user, role=Role.MEMBER)
    return bob


def end(change: str, membership: Membership) -> None:
    """Alice removes Bob, or makes him a billing member (who may not use the playground)."""
    alice, path = signed_in("alice@example.com"), f"/api/tenants/alice-co/members/{membership.pk}/"
    if change == "removed":
        assert alice.delete(path).status_code == 204
    else:
        answer = alice.patch(path, {"role": Role.BILLING}, content_type="application/json")
        assert answer.status_code == 200


def assert_closed_as_forbidden(socket) -> None:
    with pytest.raises(ConnectionClosed) as closed:
        receive(socket)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


@pytest.mark.parametrize("change", ["removed", "made billing"])
def test_playground_closes_on_the_next_message_once_the_member_may_not_use_it(gateway_url, tenant, other_tenant,
                                                                                change):
    bob = member_of_both(tenant, other_tenant)
    with open_playground(gateway_url, tenant.slug, BOB) as socket, \
            open_playground(gateway_url, other_tenant.slug, BOB) as elsewhere:
        run(socket, "before")
        assert receive_until(socket, "done")[-1]["type"] == "done"

        end(change, bob)

        run(socket, "after")
        assert_closed_as_forbidden(socket)
        run(elsewhere, "still here")
        assert receive_until(elsewhere, "done")[-1]["output_tokens"] == 2
    assert UsageRecord.objects.filter(tenant=tenant).count() == 1  # "after" was never served


def test_live_usage_closes_before_the_next_push_once_the_member_is_removed(gateway_url, tenant, other_tenant,
                                                                          client, other_client):
    bob = member_of_both(tenant, other_tenant)
    cookie = session_cookie(BOB)
    with open_socket(gateway_url, tenant.slug, session_cookie("alice@example.com")) as alices, \
            open_socket(gateway_url, tenant.slug, cookie) as socket, \
            open_socket(gateway_url, other_tenant.slug, cookie) as elsewhere:
        end("removed", bob)

        client.chat.completions.create(model="demo/echo", messages=[{"role": "user", "content": "live one"}])
        assert receive(alices)["model"] == "demo/echo"
        assert_closed_as_forbidden(socket)
        other_client.chat.completions.create(model="demo/echo", messages=[{"role": "user", "content": "charlie"}])
        assert receive(elsewhere)["output_tokens"] == 1
