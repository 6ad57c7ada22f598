"""Media models in chat: ``image/<model id>`` (and ``video/<model id>``) through
/v1/chat/completions, for chat clients that know only that endpoint.

The last user message is the prompt. Flags in it set the parameters and are taken out of it:
    --size WxH   --ratio A:B   --resolution Np   --steps N   --guidance X   --seed N   --n N
    --duration N (video)
each checked like the media endpoint's own parameter (a 400 lists what the model takes);
``--resolution 720p`` picks the model's size whose shorter side that is (with ``--ratio``, of that
ratio). A last user message of ``/help`` answers the flags and what the model takes, free. The
answer is markdown: a ``![image 1](<signed URL>)`` line per image. Streamed, progress lines come
first ("Generating 1 image with openai/dall-e-3 (1024x1024)."), one every PROGRESS_SECONDS while
the provider works, then the links; the stream starts only after admission, so a refusal is a
real HTTP status, and a failure after it is an error event (the SDK raises). Usage is the media
request's: one record under the media model's id, settled before the last event.

``video/<model>`` takes --duration, --ratio, --resolution, --size and --seed, makes a video job
(as POST /v1/videos) and answers with a link to the video once the worker has made it; streamed,
a progress line comes with each change of the job. ROUTES maps each prefix to its function.
"""

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from decimal import Decimal

from django.http import HttpResponse, JsonResponse, StreamingHttpResponse

from gateway.serving.call import Call
from gateway.serving.chains import find_model
from gateway.serving.errors import log_provider_error
from gateway.serving.streams import ChatEvent, ChatStream, Closing, Failed, Settled
from gateway.v1 import images, openai_chat_answer, sse, videos
from gateway.v1.answers import EncodedStream
from gateway.v1.errors import GatewayError, bad_request
from gateway.v1.media import allowed_values
from providers.errors import ProviderError
from providers.router import ModelInfo
from providers.types import ChatRequest, ChatResult, Delta, Finish, Usage

PROGRESS_SECONDS = 5.0
FLAG = re.compile(r"(?:^|\s)--([A-Za-z_]+)(?:[ =]+(\S+))?")
IMAGE_FLAGS = {"size": "size", "ratio": "aspect_ratio", "steps": "steps", "guidance": "guidance_scale", "seed": "seed",
               "n": "n"}
FLAG_HELP = {
    "size": "WxH: the image size, e.g. --size 1024x1024",
    "ratio": "A:B: the aspect ratio rather than a size, e.g. --ratio 16:9",
    "resolution": "Np: the size by its shorter side (with --ratio, of that ratio), e.g. --resolution 720p",
    "n": "how many images, e.g. --n 2",
    "steps": "denoising steps, e.g. --steps 28",
    "guidance": "how closely to follow the prompt (guidance scale), e.g. --guidance 3.5",
    "seed": "a fixed seed, for the same image again, e.g. --seed 42",
    "duration": "seconds of video (video/<model> only), e.g. --duration 8",
}
HELP_COMMANDS = ("/help", "--help")


def parse_prompt(chat: ChatRequest, *, known: set[str]) -> tuple[str, dict[str, str]]:
    """The last user message's text without its flags, and the flags' values."""
    text = last_user_text(chat)
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


def last_user_text(chat: ChatRequest) -> str:
    user = next((message for message in reversed(chat.messages) if message.role == "user"), None)
    return user.text() if user is not None else ""


def size_at(model: ModelInfo, resolution: str, ratio: str | None) -> str:
    """The model's size whose shorter side is ``resolution`` ("720p"), of ``ratio`` when given."""
    lines = resolution.lower().removesuffix("p")
    if not lines.isdigit():
        raise bad_request(f"--resolution takes lines, e.g. 720p, not {resolution!r}.", param="messages")
    sizes = [size for size in allowed_values(model, "sizes") or () if re.fullmatch(r"\d+x\d+", str(size))]
    if not sizes:
        raise bad_request(f"'{model.public_id}' takes no size; leave out --resolution.", param="messages")
    for size in sizes:
        width, height = (int(side) for side in size.split("x"))
        if min(width, height) == int(lines) and (ratio is None or is_ratio(width, height, ratio)):
            return size
    at = f"{resolution}{f' and {ratio}' if ratio else ''}"
    raise bad_request(f"'{model.public_id}' has no size at {at}; its sizes are: {', '.join(sizes)}.",
                      param="messages")


def is_ratio(width: int, height: int, ratio: str) -> bool:
    across, _, down = ratio.partition(":")
    if not (across.isdigit() and down.isdigit() and int(down)):
        raise bad_request(f"--ratio takes A:B, e.g. 16:9, not {ratio!r}.", param="messages")
    return abs(width / height - int(across) / int(down)) < 0.02


def help_text(model: ModelInfo) -> str:
    """The flags, and what this model takes of them."""
    options = model.media_options
    takes = [f"sizes {', '.join(map(str, allowed_values(model, 'sizes')))}" if options.get("sizes") else "",
             f"ratios {', '.join(map(str, options['aspect_ratios']))}" if options.get("aspect_ratios") else "",
             f"at most {options['max_n']} per request" if options.get("max_n") else "",
             f"extras {', '.join(options['extras'])}" if options.get("extras") else ""]
    return flags_help(model, "image", FLAG_HELP, takes)


def flags_help(model: ModelInfo, kind: str, flag_help: dict[str, str], takes: list[str]) -> str:
    lines = [f"Describe the {kind} to make; flags set its parameters (they are taken out of the prompt). "
             f"For {model.public_id}:", ""]
    lines += [f"- `--{name}` {text}" for name, text in flag_help.items()]
    if any(takes):
        lines += ["", f"{model.public_id} takes: {'; '.join(part for part in takes if part)}."]
    return "\n".join(lines)


def chunk_stream(chat: ChatRequest, completion_id: str) -> openai_chat_answer.OpenAIStream:
    """The chat stream encoder of a media answer, under the model id the client asked for."""
    return openai_chat_answer.OpenAIStream(openai_chat_answer.ChunkEncoder(
        completion_id=completion_id, model=chat.model, include_usage=chat.include_usage))


def answer_text(text: str, chat: ChatRequest, encoder, *, completion_id: str) -> HttpResponse:
    """An answer the gateway gives itself (no provider, nothing billed)."""
    if not chat.stream:
        return JsonResponse(openai_chat_answer.encode_completion(
            ChatResult(id=completion_id, content=text, finish_reason="stop", usage=Usage()),
            completion_id=completion_id, model=chat.model))

    async def events() -> AsyncIterator[ChatEvent]:
        yield Delta(content=text)
        yield Finish("stop")
        yield Closing(Usage())
        yield Settled(Decimal(0))

    return streamed(ChatStream(events()), encoder)


def streamed(stream: ChatStream, encoder) -> StreamingHttpResponse:
    return StreamingHttpResponse(EncodedStream(stream, encoder), content_type="text/event-stream", headers=sse.HEADERS)


def media_route(model: str) -> Callable[..., Awaitable[HttpResponse]] | None:
    """The function serving ``model`` in chat, if it names a media model (``image/...``)."""
    return next((serve for prefix, serve in ROUTES.items() if model.startswith(prefix)), None)


async def serve_image_chat(request, call: Call, chat: ChatRequest, *, completion_id: str) -> HttpResponse:
    encoder = chunk_stream(chat, completion_id)
    public_id = chat.model.removeprefix("image/")
    if last_user_text(chat).strip().lower() in HELP_COMMANDS:
        model, _ = await images.find_image_model(public_id)
        return answer_text(help_text(model), chat, encoder, completion_id=completion_id)
    prompt, flags = parse_prompt(chat, known={*IMAGE_FLAGS, "resolution", "duration"})
    if "duration" in flags:
        raise bad_request("--duration is for video models (video/<model>); images have none.", param="messages")
    if "resolution" in flags:
        if "size" in flags:
            raise bad_request("Send --size or --resolution, not both.", param="messages")
        model, _ = await images.find_image_model(public_id)
        flags["size"] = size_at(model, flags.pop("resolution"), flags.pop("ratio", None))
    fields = {"model": public_id, "prompt": prompt, **{IMAGE_FLAGS[name]: value for name, value in flags.items()}}
    job = await images.admit_images(call, fields, [], None)
    if not chat.stream:
        async with job.meter:
            made = await images.run_images(job)
        return JsonResponse(openai_chat_answer.encode_completion(
            ChatResult(id=completion_id, content=markdown_of(request, made), finish_reason="stop",
                       usage=token_usage(made.result.usage)), completion_id=completion_id, model=chat.model))
    async with AsyncExitStack() as scope:
        await scope.enter_async_context(job.meter)
        owned = scope.pop_all()  # the stream's from here: it settles when the stream ends, however
    return streamed(ChatStream(image_events(request, job, owned), owned), encoder)


def markdown_of(request, made: images.MadeImages) -> str:
    return "\n\n".join(f"![image {number}]({images.media_url(request, file)})"
                       for number, file in enumerate(made.files, start=1))


def token_usage(usage: Usage) -> Usage:
    return Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)


def describe(job: images.ImageJob) -> str:
    count = f"{job.request.n} image{'s' if job.request.n > 1 else ''}"
    size = f" ({job.request.size})" if job.request.size and job.request.size != "auto" else ""
    return f"Generating {count} with {job.model.public_id}{size}.\n\n"


async def image_events(request, job: images.ImageJob, scope: AsyncExitStack) -> AsyncIterator[ChatEvent]:
    """Progress lines while the provider works, then the images' links, inside the job's meter
    scope: a client that leaves cancels the work and is billed nothing."""
    meter = job.meter
    ending: ChatEvent | None = None
    async with scope:
        yield Delta(content=describe(job))
        started = time.monotonic()
        work = asyncio.ensure_future(images.run_images(job))
        try:
            while not (await asyncio.wait({work}, timeout=PROGRESS_SECONDS))[0]:
                yield Delta(content=f"Still working ({int(time.monotonic() - started)}s).\n\n")
            made = work.result()
        except Exception as error:
            if isinstance(error, ProviderError):
                log_provider_error(error, meter.reservation.request_id)
            meter.ended_by(error)
            ending = Failed(error, meter.reservation.request_id)
        finally:
            if not work.done():
                work.cancel()
        if ending is None:
            yield Delta(content=markdown_of(request, made))
            yield Finish("stop")
            yield Closing(token_usage(made.result.usage))
    yield ending or Settled(meter.cost())


VIDEO_FLAGS = {"duration": "duration_seconds", "ratio": "aspect_ratio", "resolution": "resolution", "size": "size",
               "seed": "seed"}
VIDEO_FLAG_HELP = {
    "duration": "seconds of video, e.g. --duration 8",
    "ratio": "A:B: the aspect ratio, e.g. --ratio 16:9",
    "resolution": "Np: the video's height in lines, e.g. --resolution 720p",
    "size": "WxH: the frame size instead of ratio and resolution, e.g. --size 1280x720",
    "seed": "a fixed seed, for the same video again, e.g. --seed 42",
}
FAILED_JOB_STATUS = {"timeout": 504}


def video_help_text(model: ModelInfo) -> str:
    options = model.media_options
    takes = [f"durations {', '.join(map(str, options['durations']))}s" if options.get("durations") else "",
             f"resolutions {', '.join(map(str, options['resolutions']))}" if options.get("resolutions") else "",
             f"ratios {', '.join(map(str, options['aspect_ratios']))}" if options.get("aspect_ratios") else ""]
    return flags_help(model, "video", VIDEO_FLAG_HELP, takes)


async def serve_video_chat(request, call: Call, chat: ChatRequest, *, completion_id: str) -> HttpResponse:
    """``video/<model>``: a video job like POST /v1/videos, waited for (its worker makes it); the
    answer links the video. Leaving the stream does not cancel the job (DELETE /v1/videos/{id})."""
    encoder = chunk_stream(chat, completion_id)
    public_id = chat.model.removeprefix("video/")
    if last_user_text(chat).strip().lower() in HELP_COMMANDS:
        model, _ = await find_model(public_id, capability="video")
        return answer_text(video_help_text(model), chat, encoder, completion_id=completion_id)
    prompt, flags = parse_prompt(chat, known=set(VIDEO_FLAGS))
    fields = {"model": public_id, "prompt": prompt, **{VIDEO_FLAGS[name]: value for name, value in flags.items()}}
    job = await videos.admit_video(call, fields, None)
    caller = call.caller
    if not chat.stream:
        file = None
        async for change in videos.watch_job(caller.tenant_id, job.id):
            if change is not None:
                job, file = change
        return JsonResponse(openai_chat_answer.encode_completion(
            ChatResult(id=completion_id, content=video_answer(request, job, file), finish_reason="stop",
                       usage=Usage()), completion_id=completion_id, model=chat.model))
    return StreamingHttpResponse(stream_video(request, caller, job, encoder), content_type="text/event-stream",
                                 headers=sse.HEADERS)


def video_answer(request, job, file) -> str:
    """The finished job as markdown, or the error of a job that did not finish."""
    if job.status == "completed" and file is not None:
        return f"[video 1 ({job.seconds.normalize():f}s)]({videos.media_url(request, file)})"
    raise GatewayError(FAILED_JOB_STATUS.get(job.error_code, 502),
                       f"Video job {job.id} {job.status}: {job.error or 'no video was made'}. It was not billed.",
                       type="upstream_error", code=job.error_code or "video_failed")


async def stream_video(request, caller, job, encoder) -> AsyncIterator[bytes]:
    yield encoder.opening()
    yield encoder.delta(Delta(content=f"Generating a {job.params.get('duration_seconds')}s video with "
                                      f"{job.model} (job {job.id}).\n\n"))
    file = None
    async for change in videos.watch_job(caller.tenant_id, job.id):
        if change is None:
            yield b": keep-alive\n\n"
            continue
        job, file = change
        if job.is_active:
            yield encoder.delta(Delta(content=f"{job.status.replace('_', ' ').capitalize()}: {job.progress}%.\n\n"))
    try:
        answer = video_answer(request, job, file)
    except GatewayError as error:
        yield encoder.failure(error)
        return
    yield encoder.delta(Delta(content=answer))
    yield encoder.finish("stop")
    yield encoder.closing(Usage())
    yield encoder.done()


ROUTES: dict[str, Callable[..., Awaitable[HttpResponse]]] = {"image/": serve_image_chat, "video/": serve_video_chat}
