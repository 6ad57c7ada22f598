"""Errors adapters raise. Vendor errors are mapped here, at the boundary; nothing from httpx
reaches a view.

    ProviderError                      status  retryable
    ├── ProviderRateLimited              429     yes (honours Retry-After)
    ├── ProviderUnavailable              502     yes: 5xx, 529 overloaded, connection failed
    │   ├── ProviderTimeout              504     yes: connect / first byte / between chunks / total
    │   └── ProviderMalformed            502     yes: an answer not in the provider's wire format
    ├── ProviderStreamBroken             502     no: the stream broke after output began
    ├── ProviderBadRequest               400     no: the provider refused the request as invalid
    │   ├── ContextWindowExceeded        400     no (a larger-context fallback may help)
    │   ├── ContentFiltered              400     no
    │   ├── UnsupportedFeature           400     no: the request uses what this provider/model lacks
    │   │   └── UnsupportedArgument      400     no: an argument's value the model cannot honour (``param``)
    │   ├── OwnKeyRefused                400     no: the tenant's own provider key was refused
    │   └── ClientInputError             400     no: the client's own input (a URL it gave) failed
    ├── ProviderAuthFailed               502     no: our credential was refused (operator's problem)
    └── ProviderNotFound                 404     no: the upstream model does not exist

Retryable means before any output reached the client: once a stream has sent an event, any
failure is final (the router never retries then), and adapters say so with ProviderStreamBroken.
A malformed answer (JSON that is not the object the API promises, a field missing or of the
wrong type) is the provider's fault like a 5xx, so it is retried, falls back and counts on the
breaker like one; usage alone that cannot be read is not an error (the answer is served and
billed by estimate).

``status`` is what the gateway answers its own client: an upstream 401 is our misconfiguration,
not the client's, so it becomes a 502 that says so. An error with ``client_caused`` says
nothing of the provider: it never counts on a circuit breaker that other tenants share.
"""


class ProviderError(Exception):
    status = 502
    retryable = False
    error_type = "upstream_error"
    code: str | None = None
    client_caused = False

    def __init__(self, message: str, *, provider: str = "", retry_after: float | None = None,
                 upstream_status: int | None = None):
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.retry_after = retry_after
        self.upstream_status = upstream_status


class ProviderRateLimited(ProviderError):
    status = 429
    retryable = True
    error_type = "rate_limit_error"
    code = "upstream_rate_limited"


class ProviderUnavailable(ProviderError):
    status = 502
    retryable = True
    error_type = "upstream_error"
    code = "upstream_unavailable"


class ProviderTimeout(ProviderUnavailable):
    status = 504
    error_type = "timeout"
    code = "upstream_timeout"


class ProviderMalformed(ProviderUnavailable):
    code = "upstream_malformed"


class ProviderStreamBroken(ProviderError):
    status = 502
    error_type = "upstream_error"
    code = "upstream_stream_broken"


class ProviderBadRequest(ProviderError):
    status = 400
    error_type = "invalid_request_error"
    code = "upstream_bad_request"


class ContextWindowExceeded(ProviderBadRequest):
    code = "context_length_exceeded"


class ContentFiltered(ProviderBadRequest):
    code = "content_filter"


class UnsupportedFeature(ProviderBadRequest):
    """Raised before any call: a silent drop would answer a different question."""

    code = "unsupported_feature"


class UnsupportedArgument(UnsupportedFeature):
    """A request argument set to a value no deployment of the model can honour (providers.arguments);
    ``param`` names it, as the client sent it."""

    code = "unsupported_argument"

    def __init__(self, message: str, *, param: str, provider: str = ""):
        super().__init__(message, provider=provider)
        self.param = param


class OwnKeyRefused(ProviderBadRequest):
    """The provider refused the tenant's own key (bring your own key): theirs to fix."""

    code = "provider_key_refused"


class ProviderAuthFailed(ProviderError):
    status = 502
    error_type = "upstream_error"
    code = "upstream_auth_failed"


class ProviderNotFound(ProviderError):
    status = 404
    error_type = "invalid_request_error"
    code = "model_not_found"


class ClientInputError(ProviderBadRequest):
    """The client's own input failed outside the provider (a URL it gave that the gateway may not
    or could not read): not retried, no fallback, and no verdict on the provider's breaker."""

    code = "invalid_input"
    client_caused = True
