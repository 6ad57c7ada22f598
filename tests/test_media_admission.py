"""Media admission: the plan's monthly image limit, largest image and spend cap hold before any
provider call, also under concurrency; what a request did not use comes back."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import openai
import pytest
from django.db import transaction
from django.utils import timezone

from billing.models import Plan
from providers.pricing import TokenPrices
from providers.types import Usage
from tests.conftest import wait_for
from tests.fakes.openai_images import ImageReply
from usage import recording, recovery
from usage.models import MonthlySpend, OpenReservation, UsageRecord
from usage.recording import Reservation, Settlement


def set_plan(**limits) -> None:
    Plan.objects.filter(slug="pro").update(**limits)


def image_requests(fake_openai) -> list[dict]:
    return [r for r in fake_openai.requests if r.get("path", "").startswith("/v1/images/")]


def test_monthly_image_limit_refuses_what_would_pass_it(client, other_client, fake_openai, tenant, other_tenant):
    set_plan(images_per_month=3)
    client.images.generate(model="openai/dall-e-2", prompt="two birds", n=2, size="256x256")

    with pytest.raises(openai.RateLimitError) as refused:
        client.images.generate(model="openai/dall-e-2", prompt="two more", n=2, size="256x256")
    assert refused.value.code == "media_limit_exceeded"
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert ("Monthly image limit reached: plan Pro includes 3 images per month, 2 are used or in progress, and "
            "this request could use up to 2.") in refused.value.message
    assert len(image_requests(fake_openai)) == 1  # the refused request reached no provider

    client.images.generate(model="openai/dall-e-2", prompt="one more", n=1, size="256x256")  # fits exactly
    assert MonthlySpend.objects.get(tenant=tenant).images == 3
    assert sum(r.images for r in UsageRecord.objects.filter(tenant=tenant)) == 3
    # Charlie's month is his own.
    other_client.images.generate(model="openai/dall-e-2", prompt="his own", n=3, size="256x256")
    assert MonthlySpend.objects.get(tenant=other_tenant).images == 3
    assert UsageRecord.objects.filter(tenant=other_tenant).count() == 1


def concurrently(fake_openai, calls: int, admitted: int, request):
    """Fire ``calls`` requests at once while the provider holds its answers: exactly ``admitted``
    reach it; the others are refused while those are still in flight."""
    fake_openai.enqueue(*[ImageReply(hold=True) for _ in range(calls)])
    with ThreadPoolExecutor(calls) as pool:
        futures = [pool.submit(request) for _ in range(calls)]
        wait_for(lambda: sum(f.done() for f in futures) == calls - admitted, what="the refusals")
        wait_for(lambda: len(image_requests(fake_openai)) == admitted, what="the admitted requests")
        fake_openai.release()
        outcomes = [f.exception() or f.result() for f in futures]
    return [o for o in outcomes if not isinstance(o, Exception)], [o for o in outcomes if isinstance(o, Exception)]


def test_the_image_limit_is_hard_under_concurrency(client, fake_openai, tenant):
    set_plan(images_per_month=3)
    served, refused = concurrently(fake_openai, 8, 3, lambda: client.images.generate(
        model="openai/dall-e-2", prompt="at once", size="256x256"))

    assert len(served) == 3 and len(refused) == 5
    assert {type(error) for error in refused} == {openai.RateLimitError}
    assert {error.code for error in refused} == {"media_limit_exceeded"}
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert (ledger.images, ledger.reserved, ledger.settled) == (3, 0, Decimal("0.048"))
    assert UsageRecord.objects.filter(tenant=tenant).count() == 3


def test_the_spend_cap_is_hard_under_concurrency(client, fake_openai, tenant):
    set_plan(monthly_spend_limit=Decimal("0.10"))  # two dall-e-3 images at $0.04, not three
    served, refused = concurrently(fake_openai, 6, 2, lambda: client.images.generate(
        model="openai/dall-e-3", prompt="at once"))

    assert len(served) == 2 and len(refused) == 4
    assert {error.code for error in refused} == {"insufficient_quota"}
    assert "plan Pro allows $0.10 of spend per month and this request could cost up to $0.040000" in refused[0].message
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert (ledger.settled, ledger.reserved, ledger.images) == (Decimal("0.08"), 0, 2)


def test_images_larger_than_the_plan_allows_are_refused(client, fake_openai, tenant):
    set_plan(max_image_pixels=1024 * 1024)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.images.generate(model="openai/dall-e-3", prompt="wide", size="1792x1024")
    assert refused.value.code == "image_size_not_on_plan"
    assert "Images of 1792x1024 are larger than plan Pro allows (1048576 pixels at most" in refused.value.message
    # "auto" may turn out as large as the model's largest size: ask for one that fits.
    with pytest.raises(openai.PermissionDeniedError):
        client.images.generate(model="openai/gpt-image-1", prompt="any size")
    client.images.generate(model="openai/dall-e-3", prompt="square", size="1024x1024")
    assert len(image_requests(fake_openai)) == 1
    assert UsageRecord.objects.get(tenant=tenant).media_detail == "1024x1024/standard"


def test_image_models_off_the_plan_are_refused(sdk_for, tenant, fake_openai):
    from gateway.api_keys import issue_api_key
    from gateway.tenants import create_tenant

    basic = create_tenant("bob-co", plan=Plan.objects.get(slug="basic"), owner_email="bob@example.com")
    sdk = sdk_for(issue_api_key(basic, name="bob").raw)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        sdk.images.generate(model="openai/dall-e-3", prompt="frontier only")
    assert refused.value.code == "model_not_on_plan"
    sdk.images.generate(model="openai/dall-e-2", prompt="small is fine", size="256x256")
    assert UsageRecord.objects.filter(tenant=basic).count() == 1
    assert not UsageRecord.objects.filter(tenant=tenant).exists()


PRICES = TokenPrices(Decimal(0), Decimal(0), Decimal(0))


def media_reservation(tenant, request_id: str, images: int) -> Reservation:
    units = Usage(images=images)
    with transaction.atomic():
        month = recording.reserve_media(request_id, tenant.pk, Decimal("0.1") * images, Decimal("10"), units,
                                        {"images": 10})
    return Reservation(request_id=request_id, tenant_id=tenant.pk, api_key_id=None, model="openai/dall-e-2",
                       provider="openai", capability="image", prices=PRICES, amount=Decimal("0.1") * images,
                       month=month, units=units)


def test_units_of_a_crashed_request_come_back_from_the_sweeper_once(tenant, other_tenant, settings):
    crashed = media_reservation(tenant, "req_crashed_media", 4)
    alive = media_reservation(tenant, "req_alive_media", 3)
    with pytest.raises(recording.LimitReached) as reached:
        media_reservation(tenant, "req_too_many", 4)
    assert (reached.value.limit, reached.value.used) == ("images", 7)
    OpenReservation.objects.filter(request_id="req_crashed_media").update(
        created_at=timezone.now() - timedelta(seconds=settings.RESERVATION_TTL_SECONDS + 1))

    assert recovery.sweep_stale_reservations() == 1
    assert MonthlySpend.objects.get(tenant=tenant).images == 3
    # Settling the crashed request after all counts what it made, and gives nothing back twice;
    # the live one made 2 of its 3.
    recording.settle(crashed, Settlement(usage=Usage(images=4)))
    recording.settle(alive, Settlement(usage=Usage(images=2)))
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert (ledger.images, ledger.reserved) == (6, 0)
    assert not MonthlySpend.objects.filter(tenant=other_tenant).exists()


def test_a_released_media_reservation_gives_back_money_and_units(tenant):
    reservation = media_reservation(tenant, "req_released", 5)
    recording.release(reservation)
    recording.release(reservation)
    ledger = MonthlySpend.objects.get(tenant=tenant)
    assert (ledger.images, ledger.reserved, ledger.settled) == (0, 0, 0)
