from django.urls import path

from gateway.dashboard import consumers, playground

websocket_urlpatterns = [
    path("ws/tenants/<slug:tenant_slug>/usage/", consumers.LiveUsageConsumer.as_asgi()),
    path("ws/tenants/<slug:tenant_slug>/playground/", playground.PlaygroundConsumer.as_asgi()),
]
