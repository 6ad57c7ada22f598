"""The steps every /v1 endpoint takes before it serves: method, key (the Call), body. Each raises
the envelope's GatewayError (or a tenancy KeyRefused) on failure."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig

from billing.entitlements import Caller
from gateway.api_keys import KeyContext, authenticate, claim_last_used, touch_last_used
from gateway.proxies import public_base_url
from gateway.serving.call import Call
from gateway.v1.cache_headers import cache_directives
from gateway.v1.errors import GatewayError, bad_request
from gateway.v1.json_body import parse_json_object
from providers import tracing
from providers.blocking import run_blocking
from usage.attribution import MAX_TAGS, MAX_USER_CHARS


def too_large() -> GatewayError:
    return GatewayError(413, f"The request body is larger than {settings.API_MAX_BODY_BYTES} bytes. Send a "
                        "smaller request (shorter messages, fewer or smaller images).", code="request_too_large")


def read_body(request) -> bytes:
    declared = request.META.get("CONTENT_LENGTH")
    if declared and declared.isdigit() and int(declared) > settings.API_MAX_BODY_BYTES:
        raise too_large()
    try:
        body = request.body
    except RequestDataTooBig as exc:
        raise too_large() from exc
    if len(body) > settings.API_MAX_BODY_BYTES:
        raise too_large()
    return body


def read_json(request) -> dict:
    """The body of a JSON endpoint, size-capped and strictly parsed (gateway.v1.json_body)."""
    return parse_json_object(read_body(request), request.content_type)


_callers: dict[tuple[int, str], tuple[KeyContext, Caller]] = {}
CALLERS_KEPT = 1024


def caller_of(key: KeyContext, *, base_url: str) -> Caller:
    """The key's Caller, built once per cached key context (a fresh context, after the key cache
    reads the key again, gets a fresh Caller): both are immutable."""
    kept = _callers.get((id(key), base_url))
    if kept is not None and kept[0] is key:
        return kept[1]
    caller = Caller(tenant_id=key.tenant_id, tenant_slug=key.tenant_slug, key_id=key.key_id, key_name=key.key_name,
                    key_allowed_models=key.allowed_models, plan=key.plan, provider_keys=key.provider_keys,
                    base_url=base_url, key_tokens_per_minute=key.tokens_per_minute,
                    key_max_concurrent_requests=key.max_concurrent_requests)
    if len(_callers) >= CALLERS_KEPT:
        _callers.clear()
    _callers[(id(key), base_url)] = (key, caller)
    return caller


PROVIDER_KEY_HEADER = "x-provider-key"
SEARCH_KEY_HEADER = "x-{}-api-key"  # by wire format: x-tavily-api-key, x-serper-api-key, x-exa-api-key
SEARCH_WIRE_FORMATS = ("tavily", "serper", "exa")
USER_HEADER = "x-tollgate-user"
TAGS_HEADER = "x-tollgate-tags"
MAX_TAG_KEY, MAX_TAG_VALUE = 64, 512  # OpenAI's bounds on metadata
INFERENCE_SCOPE = "inference"


async def authenticated_call(request, *, method: str) -> Call:
    """The request's Call: its method checked, its API key verified (with the 'inference' scope),
    the client's own provider and search keys and its cache directives from its headers. Kept on the request for its
    response headers and log line (api_view, request_log)."""
    if request.method != method:
        raise GatewayError(405, f"{request.path} accepts {method}, not {request.method}.", code="method_not_allowed",
                           headers={"Allow": method})
    with tracing.span("authenticate"):
        key = await authenticate(request)
    if INFERENCE_SCOPE not in key.scopes:
        raise GatewayError(403, f"API key '{key.key_name}' may not call /v1: its scopes are "
                           f"{', '.join(key.scopes) or 'none'}, and /v1 needs 'inference'. Use a key with the "
                           "'inference' scope, or create one in the dashboard.", type="permission_error",
                           code="missing_scope")
    if (used_at := claim_last_used(key)) is not None:
        await run_blocking(touch_last_used, key, used_at)
    headers = request.headers
    request.call = Call(caller_of(key, base_url=public_base_url(request)), request.request_id,
                        provider_key=headers.get(PROVIDER_KEY_HEADER, "").strip(),
                        search_keys={wire_format: headers.get(SEARCH_KEY_HEADER.format(wire_format), "")
                                     for wire_format in SEARCH_WIRE_FORMATS},
                        cache_policy=key.cache, cache_directives=cache_directives(headers),
                        scopes=tuple(key.scopes), end_user=header_user(headers), tags=header_tags(headers))
    return request.call


def header_user(headers) -> str:
    user = headers.get(USER_HEADER, "").strip()
    if len(user) > MAX_USER_CHARS:
        raise bad_request(f"{USER_HEADER} is {len(user)} characters long; send at most {MAX_USER_CHARS}.",
                          param=USER_HEADER)
    return user


def header_tags(headers) -> dict[str, str]:
    """x-tollgate-tags: ``key=value`` pairs separated by commas (``team=search,env=prod``), bounded
    like the body's metadata."""
    raw = headers.get(TAGS_HEADER, "").strip()
    if not raw:
        return {}
    pairs = [part.partition("=") for part in raw.split(",") if part.strip()]
    tags = {key.strip(): value.strip() for key, sep, value in pairs if sep and key.strip()}
    if len(tags) != len(pairs) or len(tags) > MAX_TAGS or any(
            len(key) > MAX_TAG_KEY or len(value) > MAX_TAG_VALUE for key, value in tags.items()):
        raise bad_request(f"{TAGS_HEADER} must be up to {MAX_TAGS} key=value pairs separated by commas (keys of at "
                          f"most {MAX_TAG_KEY} characters, values of at most {MAX_TAG_VALUE}), e.g. "
                          "'team=search,env=prod'.", param=TAGS_HEADER)
    return tags


