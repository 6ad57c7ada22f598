"""The ASGI handler for /v1: Django without its middleware stack.

The API authenticates by key and keeps no session, cookie, CSRF token or flash message, and
each of Django's MiddlewareMixin middlewares would cost two thread hops per request (they run
sync under ASGI). So /v1 gets a handler with an empty chain; pages and the admin keep
settings.MIDDLEWARE.
"""

from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response


class ApiHandler(ASGIHandler):
    def load_middleware(self, is_async=False):
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        self._middleware_chain = convert_exception_to_response(self._get_response_async)


class PathDispatcher:
    """Send HTTP requests under ``prefix`` to ``api``, everything else to ``site``."""

    def __init__(self, *, prefix: str, api, site):
        self.prefix = prefix
        self.api = api
        self.site = site

    async def __call__(self, scope, receive, send):
        app = self.api if scope["path"].startswith(self.prefix) else self.site
        await app(scope, receive, send)
