"""The spend-alerts page, /t/<slug>/billing/alerts/: the thresholds, the webhook URL and its
signing secret (shown once when made or rotated), a test event, and the delivery log with a
redelivery button. For owners, admins and billing members (tenancy.PAGE_ROLES["alerts"]); the
mails go to owners and billing members (billing/alerts.py).

    GET/POST /t/<slug>/billing/alerts/                                thresholds and webhook URL
    POST     /t/<slug>/billing/alerts/secret/                         rotate the signing secret
    POST     /t/<slug>/billing/alerts/test/                           queue a "ping" event
    POST     /t/<slug>/billing/alerts/deliveries/<id>/redeliver/      send a webhook event again
"""

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_POST

from billing.alert_delivery import CannotRedeliver, redeliver
from billing.alert_models import AlertDelivery
from billing.alerts import (
    InvalidAlertSettings,
    parse_thresholds,
    rotate_webhook_secret,
    save_alert_settings,
    send_test_event,
)
from gateway.access import (
    get_alert_deliveries_for_tenant,
    get_alert_delivery_for_tenant,
    get_alert_settings_for_tenant,
    get_subscription_for_tenant,
)
from gateway.dashboard.tenancy import tenant_page, tenant_url
from gateway.models import Membership

LOG_ROWS = 50


def render_alerts(request, membership: Membership, *, form: dict | None = None, error: str = "",
                  new_secret: str | None = None, status: int = 200):
    tenant = membership.tenant
    alert_settings = get_alert_settings_for_tenant(tenant)
    form = form or {"thresholds": ", ".join(str(t) for t in alert_settings.thresholds),
                    "webhook_url": alert_settings.webhook_url}
    response = render(request, "dashboard/alerts.html", {
        "alert_settings": alert_settings,
        "form": form,
        "error": error,
        "new_secret": new_secret,
        "cap": get_subscription_for_tenant(tenant).plan.monthly_spend_limit,
        "deliveries": get_alert_deliveries_for_tenant(tenant, limit=LOG_ROWS),
        "check_seconds": int(settings.ALERT_CHECK_SECONDS),
    }, status=status)
    if new_secret is not None:
        response["Cache-Control"] = "no-store"  # the raw secret must not outlive this page
    return response


def back_to_alerts(membership: Membership) -> HttpResponseRedirect:
    return HttpResponseRedirect(tenant_url(membership.tenant.slug, "billing/alerts/"))


@tenant_page("alerts")
def alerts_page(request, membership: Membership):
    if request.method != "POST":
        return render_alerts(request, membership)
    form = {"thresholds": request.POST.get("thresholds", ""), "webhook_url": request.POST.get("webhook_url", "")}
    try:
        saved = save_alert_settings(membership.tenant, thresholds=parse_thresholds(form["thresholds"]),
                                    webhook_url=form["webhook_url"])
    except InvalidAlertSettings as exc:
        return render_alerts(request, membership, form=form, error=str(exc), status=400)
    if saved.new_secret is not None:
        return render_alerts(request, membership, new_secret=saved.new_secret)
    messages.success(request, "Alert settings saved.")
    return back_to_alerts(membership)


@require_POST
@tenant_page("alerts")
def rotate_secret(request, membership: Membership):
    return render_alerts(request, membership, new_secret=rotate_webhook_secret(membership.tenant))


@require_POST
@tenant_page("alerts")
def test_event(request, membership: Membership):
    try:
        send_test_event(membership.tenant)
    except InvalidAlertSettings as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"A test event is on its way: it shows below within "
                                  f"{int(settings.ALERT_CHECK_SECONDS)} seconds.")
    return back_to_alerts(membership)


@require_POST
@tenant_page("alerts")
def redeliver_event(request, membership: Membership, delivery_id: int):
    try:
        delivery = get_alert_delivery_for_tenant(membership.tenant, delivery_id)
    except AlertDelivery.DoesNotExist as exc:
        raise Http404("No such delivery.") from exc
    try:
        redeliver(delivery)
    except CannotRedeliver as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Event {delivery.event_id} is queued to be sent again.")
    return back_to_alerts(membership)
