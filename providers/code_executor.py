"""The client of the operator's Python executor, for the ``code_interpreter`` tool.

    is_available() -> bool                          PYTHON_EXECUTOR_URL is set
    run_code(code, *, timeout) -> ExecutionResult   one snippet, run by the executor

    POST {PYTHON_EXECUTOR_URL}/run   Authorization: Bearer {PYTHON_EXECUTOR_KEY}
         {"code": "...", "timeout": seconds}
      -> {"stdout", "stderr", "result", "error", "duration_ms", "timed_out"}

Snippets never run in the gateway's process. The executor's URL is the operator's, not a client's,
so it is reached through the pooled client (providers.http), not the outbound-fetch policy. A
snippet that raises or runs out of time is a result: its error goes back to the model. The
executor failing is a ProviderError, as a provider's failure is:

    not configured                              UnsupportedFeature      400
    401 / 403 (our key refused)                 ProviderAuthFailed      502
    429                                         ProviderRateLimited     429
    400 / 413 / 422 (the snippet refused)       ProviderBadRequest      400
    another status, connection failed           ProviderUnavailable     502
    no answer within timeout + QUEUE_SECONDS    ProviderTimeout         504
    an answer not in the format above           ProviderMalformed       502

Each text field is cut at OUTPUT_CHARS for the model, and the body read at most BODY_BYTES.
"""

import asyncio
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
from django.conf import settings

from providers import errors
from providers.http import get_client

PROVIDER = "python-executor"  # the name errors carry, as a provider's slug
QUEUE_SECONDS = 10.0  # beyond the snippet's own timeout: the interpreter's start and a wait for a free slot
OUTPUT_CHARS = 20_000
BODY_BYTES = 1024 * 1024
INPUT_STATUSES = (400, 413, 422)
FIELDS = {"stdout", "stderr", "result", "error", "duration_ms", "timed_out"}


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    stdout: str
    stderr: str
    result: str | None  # repr of the snippet's last expression, when it was one and not None
    error: str | None  # the snippet's traceback, or why it was stopped
    duration_ms: int
    timed_out: bool

    @property
    def seconds(self) -> Decimal:
        """The run's time in seconds, to the millisecond (what a per-second price multiplies)."""
        return Decimal(self.duration_ms) / 1000


def is_available() -> bool:
    return bool(settings.PYTHON_EXECUTOR_URL)


# ``timeout`` is the snippet's own limit, sent to the executor that enforces it (ASYNC109 is about
# callers' deadlines); this call waits at most QUEUE_SECONDS longer.
async def run_code(code: str, *, timeout: float) -> ExecutionResult:  # noqa: ASYNC109
    """Runs ``code`` on the operator's executor with a limit of ``timeout`` seconds."""
    if not is_available():
        raise errors.UnsupportedFeature("The code_interpreter tool is not available on this gateway: its operator "
                                        "has not configured a Python executor (PYTHON_EXECUTOR_URL).")
    deadline = timeout + QUEUE_SECONDS
    client = get_client()
    request = client.build_request(
        "POST", f"{settings.PYTHON_EXECUTOR_URL.rstrip('/')}/run", json={"code": code, "timeout": timeout},
        headers={"Authorization": f"Bearer {settings.PYTHON_EXECUTOR_KEY}"}, timeout=httpx.Timeout(deadline))
    try:
        async with asyncio.timeout(deadline):
            response = await client.send(request, stream=True)
            try:
                status, body = response.status_code, await read_body(response)
            finally:
                await response.aclose()
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise errors.ProviderTimeout(f"The Python executor did not answer within {deadline:g}s.",
                                     provider=PROVIDER) from exc
    except httpx.TransportError as exc:
        raise errors.ProviderUnavailable(f"The Python executor could not be reached ({type(exc).__name__}).",
                                         provider=PROVIDER) from exc
    if status >= 400:
        raise status_error(status, body)
    return parse_result(body)


async def read_body(response: httpx.Response) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > BODY_BYTES:
            raise errors.ProviderMalformed(f"The Python executor answered more than {BODY_BYTES} bytes.",
                                           provider=PROVIDER, upstream_status=response.status_code)
    return bytes(body)


def status_error(status: int, body: bytes) -> errors.ProviderError:
    said = f"The Python executor answered HTTP {status}: {message_of(body)}"
    if status in (401, 403):
        return errors.ProviderAuthFailed(f"{said}; it refused the gateway's key (check PYTHON_EXECUTOR_KEY).",
                                         provider=PROVIDER, upstream_status=status)
    if status == 429:
        return errors.ProviderRateLimited(f"{said}.", provider=PROVIDER, upstream_status=status)
    if status in INPUT_STATUSES:
        return errors.ProviderBadRequest(f"{said}.", provider=PROVIDER, upstream_status=status)
    return errors.ProviderUnavailable(f"{said}.", provider=PROVIDER, upstream_status=status)


def message_of(body: bytes) -> str:
    try:
        said = json.loads(body).get("error")
    except (ValueError, AttributeError):
        said = None
    return clip(said, 500).rstrip(".") if isinstance(said, str) and said else "no details"


def parse_result(body: bytes) -> ExecutionResult:
    try:
        payload: Any = json.loads(body)
    except ValueError:
        payload = None
    if not isinstance(payload, dict) or not is_result(payload):
        raise errors.ProviderMalformed("The Python executor answered something other than a run's result "
                                       f"(an object of {', '.join(sorted(FIELDS))}).", provider=PROVIDER)
    return ExecutionResult(
        stdout=clip(payload["stdout"]), stderr=clip(payload["stderr"]),
        result=None if payload["result"] is None else clip(payload["result"]),
        error=None if payload["error"] is None else clip(payload["error"]),
        duration_ms=payload["duration_ms"], timed_out=payload["timed_out"])


def is_result(payload: dict[str, Any]) -> bool:
    return (FIELDS <= payload.keys() and isinstance(payload["stdout"], str) and isinstance(payload["stderr"], str)
            and isinstance(payload["result"], str | None) and isinstance(payload["error"], str | None)
            and type(payload["duration_ms"]) is int and payload["duration_ms"] >= 0
            and isinstance(payload["timed_out"], bool))


def clip(text: str, limit: int = OUTPUT_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}\n[cut at {limit} characters]"
