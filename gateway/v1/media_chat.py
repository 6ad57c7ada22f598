"""Media models in chat: ``image/<model id>`` (and ``video/<model id>``) through
/v1/chat/completions, for chat clients that know only that endpoint.

The last user message is the prompt. Flags in it set the parameters and are taken out of it:
    --size WxH   --ratio A:B   --steps N   --seed N   --n N   --duration N (video)
each checked like the media endpoint's own parameter (a 400 lists what the model takes). The
answer is markdown: a ``![image 1](<signed URL>)`` line per image. Streamed, progress lines come
first ("Generating 1 image with openai/dall-e-3 (1024x1024)."), one every PROGRESS_SECONDS while
the provider works, then the links; the stream starts only after admission, so a refusal is a
real HTTP status, and a failure after it is an error event (the SDK raises). Usage is the media
request's: one record under the media model's id, settled before the last event.

ROUTES maps each prefix to the function serving it (videos adds ``video/``).
"""

import asyncio
import re
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable

from django.http import HttpResponse, JsonResponse, StreamingHttpResponse

from billing.entitlements import Caller
from gateway.v1 import chat as chat_endpoint
from gateway.v1 import images, openai_chat, sse
from gateway.v1.errors import GatewayError, as_gateway_error, bad_request, log_provider_error
from providers.errors import ProviderError
from providers.types import ChatRequest, ChatResult, Delta, Usage

PROGRESS_SECONDS = 5.0
FLAG = re.compile(r"(?:^|\s)--([A-Za-z_]+)(?:[ =]+(\S+))?")
IMAGE_FLAGS = {"size": "size", "ratio": "aspect_ratio", "steps": "steps", "seed": "seed", "n": "n"}


def parse_prompt(chat: ChatRequest, *, known: set[str]) -> tuple[str, dict[str, str]]:
    """The last user message's text without its flags, and the flags' values."""
    user = next((message for message in reversed(chat.messages) if message.role == "user"), None)
    text = user.text() if user is not None else ""
    flags: dict[str, str] = {}
    for match in FLAG.finditer(text):
        name, value = match[1].lower(), match[2]
        if name not in known:
            raise bad_request(f"Unknown flag --{name}; use {', '.join(f'--{flag}' for flag in sorted(known))}.",
                              param="messages")
        if value is None:
            raise bad_request(f"--{name} needs a value, e.g. --size 1024x1024 or --seed 7.", param="messages")
        flags[name] = value
    prompt = " ".join(FLAG.sub(" ", text).split())
    if not prompt:
        raise bad_request("Describe what to make in the last user message (flags such as --size go beside it).",
                          param="messages", code="missing_required_parameter")
    return prompt, flags


def media_route(model: str) -> Callable[..., Awaitable[HttpResponse]] | None:
    """The function serving ``model`` in chat, if it names a media model (``image/...``)."""
    return next((serve for prefix, serve in ROUTES.items() if model.startswith(prefix)), None)


async def serve_image_chat(request, caller: Caller, chat: ChatRequest, *, started: float,
                           completion_id: str) -> HttpResponse:
    prompt, flags = parse_prompt(chat, known={*IMAGE_FLAGS, "duration"})
    if "duration" in flags:
        raise bad_request("--duration is for video models (video/<model>); images have none.", param="messages")
    fields = {"model": chat.model.removeprefix("image/"), "prompt": prompt,
              **{IMAGE_FLAGS[name]: value for name, value in flags.items()}}
    job = await images.admit_images(request, caller, fields, [], None, started=started)
    encoder = chat_endpoint.OpenAIStream(openai_chat.ChunkEncoder(
        completion_id=completion_id, model=chat.model, include_usage=chat.include_usage))
    if not chat.stream:
        made = await images.run_images(request, job)
        return JsonResponse(openai_chat.encode_completion(
            ChatResult(id=completion_id, content=markdown_of(request, made), finish_reason="stop",
                       usage=token_usage(made.result.usage)), completion_id=completion_id, model=chat.model))
    body = stream_images(request, job, encoder)
    weakref.finalize(body, chat_endpoint.settle_abandoned, job.meter, asyncio.get_running_loop())
    return StreamingHttpResponse(body, content_type="text/event-stream", headers=sse.HEADERS)


def markdown_of(request, made: images.MadeImages) -> str:
    return "\n\n".join(f"![image {number}]({images.media_url(request, file)})"
                       for number, file in enumerate(made.files, start=1))


def token_usage(usage: Usage) -> Usage:
    return Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)


def describe(job: images.ImageJob) -> str:
    count = f"{job.request.n} image{'s' if job.request.n > 1 else ''}"
    size = f" ({job.request.size})" if job.request.size and job.request.size != "auto" else ""
    return f"Generating {count} with {job.model.public_id}{size}.\n\n"


async def stream_images(request, job: images.ImageJob, encoder) -> AsyncIterator[bytes]:
    yield encoder.opening()
    yield encoder.delta(Delta(content=describe(job)))
    started = time.monotonic()
    work = asyncio.ensure_future(images.run_images(request, job))
    try:
        while not (await asyncio.wait({work}, timeout=PROGRESS_SECONDS))[0]:
            yield encoder.delta(Delta(content=f"Still working ({int(time.monotonic() - started)}s).\n\n"))
        made = work.result()
    except ProviderError as error:
        log_provider_error(error, request.request_id)
        yield encoder.failure(as_gateway_error(error))
        return
    except Exception:
        yield encoder.failure(GatewayError(
            500, f"The gateway failed on this request ({request.request_id}); no image was billed.",
            type="server_error", code="internal_error"))
        return
    finally:
        if not work.done():
            work.cancel()  # the client left: run_images settles it as such
    yield encoder.delta(Delta(content=markdown_of(request, made)))
    yield encoder.finish("stop")
    yield encoder.closing(token_usage(made.result.usage))
    yield encoder.done()


ROUTES: dict[str, Callable[..., Awaitable[HttpResponse]]] = {"image/": serve_image_chat}
