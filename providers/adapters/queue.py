"""Waiting on a provider's job queue (fal.ai's queue, Replicate's predictions) and the per-model
input conventions those catch-all hosts need.

    wait_for_job(check, target, cancel)   poll ``check`` with backoff until it has the result,
                                          within target.total_timeout; cancel the job upstream
                                          when the wait ends without one
    poll_delays(target)                   the backoff: poll_interval (0.5 s), x1.5, at most
                                          poll_interval_max (5 s), both provider quirks
    progress_from_logs(lines)             a percentage the model printed ("37%", "step 3/28")
    model_inputs(target)                  the ``model_inputs`` quirk for this upstream model
    media_url, size_ratio, requested_resolution   inputs both hosts take in the same form
    video_seconds(video, asked, target)   a finished video's billed length: asked for, else measured

A host like fal or Replicate serves thousands of models, each with its own input schema, so a
model the operator adds in the admin needs no code: the adapters send the common field names,
and a model that names a field differently declares it in the provider's ``model_inputs`` quirk,
keyed by upstream model id prefix (the longest matching prefix wins):

    model_inputs:
      fal-ai/veo3: {duration: "{seconds}s"}                 # "8s" rather than "8"
      fal-ai/kokoro: {fields: {text: prompt}}               # the text to speak is "prompt"
      fal-ai/kling-video: {fields: {resolution: null}}      # takes no resolution: left out
      fal-ai/nano-banana/edit: {fields: {image_url: image_urls}}
      black-forest-labs/flux-dev: {fields: {guidance_scale: guidance}}
      google/veo-3: {inputs: {generate_audio: false}}       # fixed inputs, always sent

``fields`` renames the adapter's input names (null: never sent); ``duration`` is a template for the seconds asked
for (absent: the adapter's default form); ``inputs`` are sent with every request to that model.
"""

import asyncio
import base64
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlsplit

from providers import errors
from providers.adapters import mp4
from providers.adapters.http_calls import download
from providers.media_types import GeneratedMedia, MediaInput, VideoRequest
from providers.types import Target

log = logging.getLogger(__name__)
T = TypeVar("T")

POLL_INTERVAL = 0.5
POLL_INTERVAL_MAX = 5.0
POLL_GROWTH = 1.5
CANCEL_TIMEOUT = 5.0
PERCENT = re.compile(r"(\d{1,3}(?:\.\d+)?)\s*%")
STEPS = re.compile(r"(\d+)\s*/\s*(\d+)")


class JobEnded(Exception):
    """Raised by a check when the job is over without a result: the wait ends with ``error``,
    retryable or not (whether to submit again is the router's call, not the wait's)."""

    def __init__(self, error: errors.ProviderError):
        super().__init__(error.message)
        self.error = error


def poll_delays(target: Target) -> Iterator[float]:
    delay = float(target.quirks.get("poll_interval", POLL_INTERVAL))
    ceiling = float(target.quirks.get("poll_interval_max", POLL_INTERVAL_MAX))
    while True:
        yield min(delay, ceiling)
        delay *= POLL_GROWTH


async def wait_for_job(check: Callable[[], Awaitable[T | None]], target: Target,
                       cancel: Callable[[], Awaitable[None]]) -> T:
    """``check()`` until it returns a result (None: not done yet; JobEnded: over without one),
    sleeping with backoff between checks and never past target.total_timeout.

    A retryable failure of one check (a 502 from the status endpoint, a dropped connection) is
    only a missed look: the job is already paid for upstream, and submitting it again would pay
    twice, so the wait goes on and the failure is raised only if the deadline passes without a
    good look. When the wait ends without a result (deadline, or the caller cancelled, as a
    client hanging up does) the job is cancelled upstream, best effort."""
    deadline = time.monotonic() + target.total_timeout
    delays = poll_delays(target)
    missed: errors.ProviderError | None = None
    try:
        while True:
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    result = await check()
            except TimeoutError:
                result = None  # a status endpoint that hangs is a look that failed at the deadline
            except JobEnded as ended:
                raise ended.error from None
            except errors.ProviderError as error:
                if not error.retryable:
                    raise  # the job's own answer (refused, failed): nothing left to cancel
                log.info("%s: status check failed (%s); still waiting", target.provider, error.message)
                missed, result = error, None
            else:
                missed = None
            if result is not None:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                await cancel_quietly(cancel, target)
                if missed is not None:
                    raise missed
                raise errors.ProviderTimeout(
                    f"{target.provider} did not finish within {target.total_timeout:g}s.", provider=target.provider)
            await asyncio.sleep(min(next(delays), remaining))
    except asyncio.CancelledError:
        await cancel_quietly(cancel, target)
        raise


async def cancel_quietly(cancel: Callable[[], Awaitable[None]], target: Target) -> None:
    """Stop a job nobody waits for any more; a failure here changes nothing for the caller."""
    try:
        async with asyncio.timeout(CANCEL_TIMEOUT):
            await cancel()
    except (errors.ProviderError, TimeoutError) as exc:
        log.info("%s: could not cancel an abandoned job (%s)", target.provider, exc)


def progress_from_logs(lines: list[str]) -> int | None:
    """The last progress a model printed: a percentage, or "n/m" steps; None when it printed none."""
    for line in reversed(lines):
        if match := PERCENT.search(line):
            return min(99, int(float(match.group(1))))
        if (match := STEPS.search(line)) and int(match.group(2)):
            return min(99, 100 * int(match.group(1)) // int(match.group(2)))
    return None


def is_missed_look(error: errors.ProviderError) -> bool:
    """The request for a finished job's result never got an HTTP answer (the connection failed):
    looking again may still find it, unlike an error status, which is the job's own answer."""
    return error.upstream_status is None and error.retryable


def same_origin(url: str | None, base_url: str) -> bool:
    """Whether a URL a provider handed back is on the host we hold its key for."""
    if not url:
        return False
    given, base = urlsplit(url), urlsplit(base_url)
    return (given.scheme, given.netloc) == (base.scheme, base.netloc)


def model_inputs(target: Target) -> dict[str, Any]:
    """The ``model_inputs`` quirk entry for target.upstream_model (longest prefix), or {}."""
    declared = target.quirks.get("model_inputs") or {}
    matches = [prefix for prefix in declared if target.upstream_model.startswith(prefix)]
    return declared[max(matches, key=len)] if matches else {}


def apply_model_inputs(payload: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """Rename the adapter's field names as the model declares (renamed to null: left out), and add
    its fixed inputs. A field renamed to a plural ``..._urls`` takes a list."""
    renamed: dict[str, Any] = {}
    fields = options.get("fields") or {}
    for name, value in payload.items():
        upstream = fields.get(name, name)
        if upstream is None:
            continue  # a field the model does not take
        if upstream.endswith("_urls") and not isinstance(value, list):
            value = [value]
        renamed[upstream] = value
    return {**renamed, **(options.get("inputs") or {})}


def duration_value(seconds: int, options: dict[str, Any], default: Callable[[int], Any]) -> Any:
    template = options.get("duration")
    return template.format(seconds=seconds) if template else default(seconds)


def media_url(media: MediaInput) -> str:
    """A file input as these hosts take it: the URL the client gave, or the bytes as a data: URL."""
    if media.url:
        return media.url
    return f"data:{media.content_type};base64,{base64.b64encode(media.content or b'').decode()}"


def size_ratio(size: str | None) -> str | None:
    """An OpenAI video size as an aspect ratio: "1280x720" -> "16:9"."""
    if not size:
        return None
    width, height = (int(side) for side in size.split("x"))
    divisor = math.gcd(width, height)
    return f"{width // divisor}:{height // divisor}"


def requested_resolution(request: VideoRequest) -> str | None:
    """The resolution asked for, or the one an OpenAI size implies: "1280x720" -> "720p"."""
    if request.resolution:
        return request.resolution
    if request.size:
        return f"{min(int(side) for side in request.size.split('x'))}p"
    return None


async def video_seconds(video: GeneratedMedia, asked: int | str | None, target: Target, *, job: str,
                        fetch: Callable[[str, Target], Awaitable[bytes]] = download) -> Decimal:
    """A finished video's length to bill: the seconds the request asked for, else read from the
    file, which is then fetched (into ``video.content``, so nobody fetches it twice); 0, logged,
    when the file does not say."""
    if asked:
        return Decimal(asked)
    video.content = await fetch(video.url or "", target)
    seconds = mp4.duration_seconds(video.content)
    if seconds is None:
        log.warning("%s %s: the video's length is unknown; billed as 0 seconds", target.provider, job)
        return Decimal(0)
    return seconds


def video_input(request: VideoRequest, target: Target, *, duration: Callable[[int], Any],
                image_field: str) -> dict[str, Any]:
    """A queue API's video inputs: the prompt and the options set, the duration as the model's
    schema takes it (``duration``: str for fal, int for Replicate), a starting image under
    ``image_field``, then the request's declared extras and the model's own inputs."""
    options = model_inputs(target)
    payload: dict[str, Any] = {"prompt": request.prompt}
    optional = {"negative_prompt": request.negative_prompt, "seed": request.seed, "fps": request.fps,
                "aspect_ratio": request.aspect_ratio or size_ratio(request.size),
                "resolution": requested_resolution(request)}
    payload.update({name: value for name, value in optional.items() if value is not None})
    if request.duration_seconds is not None:
        payload["duration"] = duration_value(request.duration_seconds, options, duration)
    if request.image is not None:
        payload[image_field] = media_url(request.image)
    return apply_model_inputs({**payload, **request.extra}, options)
