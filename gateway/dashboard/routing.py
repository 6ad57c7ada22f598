from django.urls import path

from gateway.dashboard import consumers

websocket_urlpatterns = [
    path("ws/tenants/<slug:tenant_slug>/usage/", consumers.LiveUsageConsumer.as_asgi()),
]
