"""A tenant's spend alerts: thresholds and webhook (the signing secret shown once), its
rotation, and the delivery log with redelivery; the dashboard's alerts page over REST."""

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response

from billing.alert_delivery import CannotRedeliver, redeliver
from billing.alert_models import AlertDelivery, AlertSettings
from billing.alerts import InvalidAlertSettings, rotate_webhook_secret, save_alert_settings
from gateway.access import (
    get_alert_deliveries_for_tenant,
    get_alert_delivery_for_tenant,
    get_alert_settings_for_tenant,
)
from gateway.api import serializers as api
from gateway.api.errors import Conflict, errors
from gateway.api.permissions import ALERT_MANAGERS
from gateway.api.views.tenants import TenantView

LOG_ROWS = 50
NO_STORE = {"Cache-Control": "no-store"}  # an answer with a raw secret is kept by no cache on the way


def settings_body(alert_settings: AlertSettings) -> dict:
    return {"thresholds": alert_settings.thresholds, "webhook_url": alert_settings.webhook_url,
            "webhook_secret_hint": alert_settings.webhook_secret_hint}


class AlertSettingsView(TenantView):
    roles = {"GET": (ALERT_MANAGERS, "reading spend alerts"), "PATCH": (ALERT_MANAGERS, "changing spend alerts")}

    @extend_schema(summary="Spend alert thresholds and webhook", tags=["alerts"],
                   responses={200: api.AlertSettingsSerializer, **errors()},
                   description="Without settings of its own a tenant is alerted at 50, 80 and 100 %, by mail only.")
    def get(self, request, slug: str):
        return Response(api.AlertSettingsSerializer(settings_body(get_alert_settings_for_tenant(self.actor.tenant)))
                        .data)

    @extend_schema(summary="Change spend alert thresholds or webhook", tags=["alerts"],
                   request=api.AlertSettingsUpdateSerializer,
                   responses={200: api.SavedAlertSettingsSerializer, **errors(400)},
                   description="The webhook URL must be https and resolve to public addresses only (400 naming the "
                               "rule otherwise). The first webhook URL makes the signing secret, returned as "
                               "``webhook_secret`` in this answer only.")
    def patch(self, request, slug: str):
        form = api.AlertSettingsUpdateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        current = get_alert_settings_for_tenant(self.actor.tenant)
        try:
            saved = save_alert_settings(self.actor.tenant,
                                        thresholds=form.validated_data.get("thresholds", current.thresholds),
                                        webhook_url=form.validated_data.get("webhook_url", current.webhook_url))
        except InvalidAlertSettings as exc:
            raise exceptions.ValidationError({exc.field: [str(exc)]}) from exc
        body = settings_body(saved.settings)
        if saved.new_secret is None:
            return Response(api.SavedAlertSettingsSerializer(body).data)
        return Response(api.SavedAlertSettingsSerializer({**body, "webhook_secret": saved.new_secret}).data,
                        headers=NO_STORE)


class AlertSecretView(TenantView):
    roles = {"POST": (ALERT_MANAGERS, "rotating the webhook secret")}

    @extend_schema(summary="Rotate the webhook signing secret", tags=["alerts"], request=None,
                   responses={200: api.WebhookSecretSerializer, **errors()},
                   description="Every attempt from now on is signed with the new secret, returned in this answer "
                               "only.")
    def post(self, request, slug: str):
        raw = rotate_webhook_secret(self.actor.tenant)
        return Response(api.WebhookSecretSerializer({"webhook_secret": raw}).data, headers=NO_STORE)


class AlertDeliveryListView(TenantView):
    roles = {"GET": (ALERT_MANAGERS, "reading alert deliveries")}

    @extend_schema(summary="Alert deliveries", tags=["alerts"],
                   responses={200: api.AlertDeliverySerializer(many=True), **errors()},
                   description=f"The latest {LOG_ROWS} mails and webhook POSTs, newest first.")
    def get(self, request, slug: str):
        deliveries = get_alert_deliveries_for_tenant(self.actor.tenant, limit=LOG_ROWS)
        return Response(api.AlertDeliverySerializer(deliveries, many=True).data)


class AlertRedeliverView(TenantView):
    roles = {"POST": (ALERT_MANAGERS, "sending alert events again")}

    @extend_schema(summary="Send a webhook event again", tags=["alerts"], request=None,
                   responses={201: api.AlertDeliverySerializer, **errors(409)},
                   description="A new delivery of the same event (same id and body), due now. 409 for a mail or "
                               "a delivery still being tried.")
    def post(self, request, slug: str, delivery_id: int):
        try:
            delivery = get_alert_delivery_for_tenant(self.actor.tenant, delivery_id)
        except AlertDelivery.DoesNotExist as exc:
            raise exceptions.NotFound(f"No alert delivery {delivery_id} in {self.actor.tenant.slug}.") from exc
        try:
            again = redeliver(delivery)
        except CannotRedeliver as exc:
            raise Conflict(str(exc)) from exc
        return Response(api.AlertDeliverySerializer(again).data, status=status.HTTP_201_CREATED)
