"""The serving layer's own error: a request it cannot serve as asked (a model that does not exist,
a parameter out of range). It carries what the client must see (status, message, param, code);
the HTTP edge (gateway.v1.errors) turns it, like billing's Refusal and a ProviderError, into its
protocol's envelope."""

import logging

from providers.errors import ProviderError

log = logging.getLogger(__name__)


class GatewayError(Exception):
    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}


def bad_request(message: str, *, param: str | None = None, code: str | None = "invalid_value") -> GatewayError:
    return GatewayError(400, message, param=param, code=code)


def log_provider_error(error: ProviderError, request_id: str) -> None:
    """The operator's record of a provider failure: who failed, how, for which request."""
    log.warning("request %s: provider %s failed (%s, upstream status %s): %s", request_id, error.provider or "?",
                type(error).__name__, error.upstream_status, error.message)
