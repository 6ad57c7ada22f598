"""ASGI entry point: HTTP through Django, WebSockets through Channels."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_application = get_asgi_application()

from gateway.handlers import ApiHandler, BodyLimit, Lifespan, PathDispatcher  # noqa: E402

# /healthz, /readyz and /metrics on the light handler too: no session, no middleware (gateway/probes.py).
http_application = PathDispatcher(prefix="/v1/", api=ApiHandler(), site=BodyLimit(django_application),
                                  paths=frozenset({"/healthz", "/readyz", "/metrics"}))

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from gateway.dashboard.routing import websocket_urlpatterns  # noqa: E402

application = Lifespan(ProtocolTypeRouter({
    "http": http_application,
    "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
}))
