"""The response headers of a /v1 answer, built in one place from the call's outcome (api_view
adds them to every answer, errors included):

    x-ratelimit-*                     the key's request and token windows (once admission checked them)
    x-tollgate-provider, -model,      who served an admitted request (or was tried last): the
    -attempts, -served-model          provider, its model id, the attempts, the public model id
    x-tollgate-search-provider        the engine of a web search
    x-tollgate-cost                   what a whole answer cost (a stream's is in its usage record)
    x-tollgate-video-id               the video job the call created
    x-tollgate-cache, -cache-match,   what the answer cache did: hit (exact or semantic, and the
    -cache-reason, age                answer's age in seconds), miss, or bypass and why
"""

from gateway.serving.call import Outcome


def outcome_headers(outcome: Outcome) -> dict[str, str]:
    headers = outcome.rate.headers() if outcome.rate is not None else {}
    if outcome.search_provider:
        headers["x-tollgate-search-provider"] = outcome.search_provider
    trace = outcome.trace
    if trace is not None and outcome.meter is not None:
        headers.update({"x-tollgate-provider": trace.provider, "x-tollgate-model": trace.upstream_model,
                        "x-tollgate-attempts": str(trace.attempts)})
        if outcome.served_model is not None:
            headers["x-tollgate-served-model"] = outcome.served_model
    if outcome.video_id:
        headers["x-tollgate-video-id"] = outcome.video_id
    if outcome.cache is not None:
        headers.update(outcome.cache.headers())
    cost = outcome.cost
    if cost is not None:
        headers["x-tollgate-cost"] = str(cost)
    return headers


def add_headers(response, headers: dict[str, str]) -> None:
    """``response[name] = value`` for each, less Django's conversion of each name and value when the
    value is printable ASCII (as the gateway's own headers are): that conversion leaves such a
    value as it is, and costs more than the rest of setting it. Any other value takes Django's way
    (encoded, or refused when it holds a newline)."""
    store = response.headers._store  # Django's ResponseHeaders: lower-cased name -> (name, value)
    for name, value in headers.items():
        if type(value) is str and value.isascii() and value.isprintable():
            store[name.lower()] = (name, value)
        else:
            response[name] = value


def add_missing_headers(response, headers: dict[str, str]) -> None:
    """add_headers for the names the response does not carry yet (``setdefault``)."""
    store = response.headers._store
    add_headers(response, {name: value for name, value in headers.items() if name.lower() not in store})
