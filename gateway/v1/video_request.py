"""A video request, decoded and checked against its model, for both create endpoints
(POST /v1/videos and /v1/video/generation, gateway.v1.videos).

They take the same fields: ``model``, ``prompt``, ``seconds`` or ``duration_seconds``, ``size``
("1280x720") or ``aspect_ratio`` + ``resolution``, ``input_reference`` (a file, or
``{"image_url"}``) or ``image_url`` (image-to-video), and, where the model declares them
(media_options ``extras``), ``negative_prompt``, ``seed``, ``fps``; plus ``fallback_models`` (or
``models``) and ``stream``. Everything is checked against the model's media_options before
anything is reserved, and refused with a 400 listing what it accepts (media_options ``image``:
"required" or "none" says whether a first frame must or may not come).
"""

import json
import math

from billing import entitlements
from gateway.serving.chains import find_model
from gateway.v1.admission import read_body
from gateway.v1.errors import bad_request
from gateway.v1.json_body import parse_json_object
from gateway.v1.media import check_choice, check_extras, check_prompt, default_choice
from gateway.v1.media import text_field as text
from providers import outbound, router
from providers.router import ModelInfo

FIELDS = {"model", "prompt", "seconds", "duration_seconds", "size", "aspect_ratio", "resolution", "input_reference",
          "image_url", "negative_prompt", "seed", "fps", "fallback_models", "models", "stream", "user"}
EXTRAS = ("negative_prompt", "seed", "fps")
MAX_FALLBACKS = 5


# --- decoding --------------------------------------------------------------------------------

def decode(request) -> tuple[dict, object | None]:
    """The request's fields and its uploaded first frame (multipart), or a 400 saying what is wrong."""
    body = read_body(request)
    content_type = request.META.get("CONTENT_TYPE", "")
    if content_type.startswith("multipart/form-data"):
        fields = {name: request.POST.getlist(name)[-1] for name in request.POST}
        upload = request.FILES.get("input_reference")
    else:
        fields = parse_json_object(body or b"{}", content_type)
        upload = None
    unknown = sorted(set(fields) - FIELDS - ({"input_reference"} if upload else set()))
    if unknown:
        raise bad_request(f"Unknown parameter '{unknown[0]}'. A video request takes: {', '.join(sorted(FIELDS))}.",
                          param=unknown[0], code="unknown_parameter")
    return fields, upload


def integer(fields: dict, name: str) -> int | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit())):
        raise bad_request(f"{name} must be a whole number, not {value!r}.", param=name)
    return int(value)


def flag(fields: dict, name: str) -> bool:
    value = fields.get(name, False)
    if isinstance(value, str):
        value = {"true": True, "false": False, "1": True, "0": False, "": False}.get(value.lower(), value)
    if not isinstance(value, bool):
        raise bad_request(f"{name} must be true or false, not {value!r}.", param=name)
    return value


def image_url_of(fields: dict) -> str | None:
    reference = fields.get("input_reference")
    url = text(fields, "image_url")
    if isinstance(reference, dict):
        if reference.get("file_id"):
            raise bad_request("input_reference.file_id is not supported here; send the image itself (multipart "
                              "input_reference) or input_reference.image_url.", param="input_reference")
        url = url or reference.get("image_url")
    elif reference not in (None, ""):
        raise bad_request("input_reference must be a file (multipart) or {\"image_url\": ...}.", param="input_reference")
    if url is None:
        return None
    if not isinstance(url, str) or (url.startswith("data:") and not url.startswith("data:image/")):
        raise bad_request("image_url must be an https:// URL or a data:image/...;base64 URL.", param="image_url")
    return url


async def check_image_url(url: str) -> None:
    """The outbound-fetch policy, at admission: a URL the worker may not read is refused now,
    before anything is reserved or queued."""
    try:
        await outbound.check_url(url)
    except outbound.UrlRefused as exc:
        raise bad_request(f"image_url refused: {exc.message}", param="image_url", code="invalid_url") from exc


def fallbacks_of(fields: dict) -> list[str]:
    chain = fields.get("fallback_models") or fields.get("models") or []
    if isinstance(chain, str):  # multipart: a JSON list or comma-separated ids
        chain = json.loads(chain) if chain.startswith("[") else [item.strip() for item in chain.split(",")]
    if not isinstance(chain, list) or not all(isinstance(item, str) and item for item in chain):
        raise bad_request("fallback_models must be a list of model ids.", param="fallback_models")
    if len(chain) > MAX_FALLBACKS:
        raise bad_request(f"fallback_models lists {len(chain)} models; at most {MAX_FALLBACKS}.", param="fallback_models")
    return chain


# --- sizes, ratios and resolutions -----------------------------------------------------------

def dimensions(size: str, *, param: str = "size") -> tuple[int, int]:
    width, x, height = size.partition("x")
    if not (x and width.isdigit() and height.isdigit() and int(width) and int(height)):
        raise bad_request(f"{param} must be WIDTHxHEIGHT, e.g. 1280x720, not {size!r}.", param=param)
    return int(width), int(height)


def resolution_of(size: str) -> str:
    return f"{min(dimensions(size))}p"


def aspect_of(size: str) -> str:
    width, height = dimensions(size)
    divisor = math.gcd(width, height)
    return f"{width // divisor}:{height // divisor}"


def size_for(aspect_ratio: str, resolution: str) -> str:
    """The frame of a ratio at a resolution: 16:9 at 720p is 1280x720, 9:16 at 1080p 1080x1920."""
    across, _, down = aspect_ratio.partition(":")
    lines = resolution.removesuffix("p")
    if not (across.isdigit() and down.isdigit() and lines.isdigit() and int(across) and int(down)):
        raise bad_request(f"aspect_ratio must be like 16:9 and resolution like 720p, not {aspect_ratio!r} and "
                          f"{resolution!r}.", param="aspect_ratio")
    a, b, lines_ = int(across), int(down), int(lines)
    return f"{round(lines_ * a / b)}x{lines_}" if a >= b else f"{lines_}x{round(lines_ * b / a)}"


def frame_of(model: ModelInfo, size: str | None, aspect_ratio: str | None, resolution: str | None) -> dict:
    """Size, aspect ratio and resolution, each filled in from the others and the model's
    defaults, and each checked against what the model declares."""
    sizes = model.media_options.get("sizes")
    if size is None and sizes and (aspect_ratio or resolution):
        matching = [candidate for candidate in sizes
                    if (aspect_ratio is None or aspect_of(candidate) == aspect_ratio)
                    and (resolution is None or resolution_of(candidate) == resolution)]
        if not matching:
            raise bad_request(f"'{model.public_id}' makes no video at {aspect_ratio or 'any ratio'} and "
                              f"{resolution or 'any resolution'}; its sizes are: {', '.join(sizes)}.", param="size")
        size = matching[0]
    if size is None and sizes:
        size = default_choice(model, "sizes", "default_size")
    if size is not None:
        check_choice(model, "sizes", size, param="size")
        aspect_ratio, resolution = aspect_ratio or aspect_of(size), resolution or resolution_of(size)
        if (aspect_ratio, resolution) != (aspect_of(size), resolution_of(size)):
            raise bad_request(f"size {size} is {aspect_of(size)} at {resolution_of(size)}, which contradicts "
                              f"aspect_ratio/resolution; send one or the other.", param="size")
    aspect_ratio = aspect_ratio or default_choice(model, "aspect_ratios", "default_aspect_ratio") or "16:9"
    resolution = resolution or default_choice(model, "resolutions", "default_resolution") or "720p"
    if size is None:
        check_choice(model, "aspect_ratios", aspect_ratio, param="aspect_ratio")
        check_choice(model, "resolutions", resolution, param="resolution")
        size = size_for(aspect_ratio, resolution)
    return {"size": size, "aspect_ratio": aspect_ratio, "resolution": resolution}


def normalise(model: ModelInfo, fields: dict, *, has_upload: bool) -> dict:
    """The job's parameters for ``model``: every value the client sent, checked, and the rest
    filled from the model's defaults."""
    prompt = check_prompt(model, fields.get("prompt"))
    seconds, duration = integer(fields, "seconds"), integer(fields, "duration_seconds")
    if seconds is not None and duration is not None and seconds != duration:
        raise bad_request(f"seconds ({seconds}) and duration_seconds ({duration}) disagree; send one.", param="seconds")
    duration = duration if duration is not None else seconds
    if duration is None:
        duration = default_choice(model, "durations", "default_duration")
    if duration is None:
        raise bad_request(f"seconds is required for '{model.public_id}'.", param="seconds")
    check_choice(model, "durations", duration, param="seconds")
    params = {"prompt": prompt, "duration_seconds": int(duration),
              **frame_of(model, text(fields, "size"), text(fields, "aspect_ratio"), text(fields, "resolution"))}
    extras = {"negative_prompt": text(fields, "negative_prompt"), "seed": integer(fields, "seed"),
              "fps": integer(fields, "fps")}
    extras = {name: value for name, value in extras.items() if value is not None}
    check_extras(model, extras)
    params.update(extras)
    image_url = image_url_of(fields)
    if image_url:
        params["image_url"] = image_url
    check_image(model, given=has_upload or image_url is not None)
    return params


def check_image(model: ModelInfo, *, given: bool) -> None:
    needs = model.media_options.get("image", "optional")
    if needs == "required" and not given:
        raise bad_request(f"'{model.public_id}' makes videos from an image: send the first frame as image_url or "
                          "input_reference.", param="image_url", code="missing_required_parameter")
    if needs == "none" and given:
        raise bad_request(f"'{model.public_id}' makes videos from text only; leave out image_url/input_reference.",
                          param="image_url")


def fits(model: ModelInfo, params: dict, *, has_upload: bool) -> bool:
    """Whether a fallback model takes the parameters the job was normalised to."""
    options = model.media_options
    for option, value in (("durations", params["duration_seconds"]), ("aspect_ratios", params["aspect_ratio"]),
                          ("resolutions", params["resolution"])):
        if options.get(option) is not None and value not in options[option]:
            return False
    if options.get("sizes") is not None and params["size"] not in options["sizes"]:
        return False
    if any(name in params and name not in options.get("extras", []) for name in EXTRAS):
        return False
    needs, given = options.get("image", "optional"), has_upload or "image_url" in params
    return not ((needs == "required" and not given) or (needs == "none" and given))


async def chain_of(caller, model: ModelInfo, fields: dict, params: dict, *, has_upload: bool) -> list[ModelInfo]:
    """The models to submit to, in order: this one, then the client's fallbacks (each must exist,
    be on the plan and take the request, else a clear error) or the operator's (those that cannot
    are left out)."""
    chain = [model]
    client_chain = fallbacks_of(fields)
    for public_id in client_chain:
        fallback, _ = await find_model(public_id, capability="video")
        entitlements.check_model(caller, fallback)
        if not fits(fallback, params, has_upload=has_upload):
            raise bad_request(f"Fallback '{public_id}' cannot make this video ({params['duration_seconds']}s, "
                              f"{params['size']}); GET /v1/models lists each model's media options.",
                              param="fallback_models")
        chain.append(fallback)
    if client_chain:
        return chain
    catalog = await router.get_catalog()
    for public_id in model.fallbacks:
        fallback = catalog.models.get(public_id)
        if (fallback is not None and fallback.capability == "video" and entitlements.is_model_allowed(caller, fallback)
                and fits(fallback, params, has_upload=has_upload)):
            chain.append(fallback)
    return chain
