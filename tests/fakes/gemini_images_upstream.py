"""The fake Gemini API (tests/fakes/gemini_upstream.py) with Google's image routes.

WIRE_FORMATS.md section 5:
- ``POST /v1beta/models/{imagen-model}:predict``: ``{"instances": [{"prompt"}], "parameters":
  {"sampleCount", "aspectRatio", "sampleImageSize", "personGeneration", "guidanceScale",
  "outputOptions"}}`` -> ``{"predictions": [{"bytesBase64Encoded", "mimeType"} | {"raiFilteredReason"}]}``.
  Like the Gemini API it refuses negativePrompt, seed, addWatermark and enhancePrompt, unknown
  parameters, a sampleCount outside 1-4 and aspect ratios Imagen does not make.
- ``generateContent`` on a Gemini image model (``-image`` in its name) asked for IMAGE answers,
  unless scripted otherwise, with a short text part and one ``inlineData`` PNG, billed as the
  real API bills it (1290 output tokens per image, in usageMetadata).

Script predictions with ``enqueue(Prediction(...))``; generateContent answers with the base
fake's ``Reply``.
"""

import base64
from dataclasses import dataclass, field

from aiohttp import web

from tests.fakes.gemini_upstream import FakeGemini, Reply, image_part, text_part
from tests.fakes.png import make_png

IMAGEN_PARAMETERS = {"sampleCount", "aspectRatio", "sampleImageSize", "personGeneration", "guidanceScale",
                     "outputOptions", "includeRaiReason", "language", "safetySetting", "imageSize"}
MLDEV_REFUSED = {"negativePrompt", "seed", "addWatermark", "enhancePrompt"}
IMAGEN_RATIOS = {"1:1", "3:4", "4:3", "9:16", "16:9"}


@dataclass
class Prediction:
    """One scripted :predict answer: how many images are filtered, or an error."""

    filtered: int = 0
    status: int = 200
    error_status: str = "INTERNAL"
    error_message: str = "The fake upstream failed as scripted."
    headers: dict[str, str] = field(default_factory=dict)


def image_reply() -> Reply:
    png = base64.b64encode(make_png(5, 5, (240, 200, 20))).decode()
    return Reply(parts=[text_part("Here is your picture."), image_part(png)])


class FakeGoogleImages(FakeGemini):
    thread_name = "fake-google-images"

    async def models(self, request: web.Request) -> web.StreamResponse:
        model, _, action = request.match_info["model_action"].rpartition(":")
        if action == "predict":
            return await self.predict(request, model)
        if action == "generateContent" and "-image" in model and not self.script:
            self.enqueue(image_reply())
        return await super().models(request)

    async def predict(self, request: web.Request, model: str) -> web.Response:
        body = await request.json()
        self.requests.append({"model": model, "action": "predict", "query": dict(request.query),
                              "headers": dict(request.headers), "body": body})
        if refused := self.key_refused(request):
            return refused
        if not model.startswith("imagen"):
            return self.error(400, "INVALID_ARGUMENT", f"{model} does not support predict.")
        problem = self.refusal(body)
        if problem:
            return self.error(400, "INVALID_ARGUMENT", problem)
        reply = self.next_reply()
        if not isinstance(reply, Prediction):
            reply = Prediction(status=reply.status, error_status=reply.error_status,
                               error_message=reply.error_message, headers=reply.headers)
        if reply.status != 200:
            return self.error(reply.status, reply.error_status, reply.error_message, headers=reply.headers)
        parameters = body.get("parameters") or {}
        mime = (parameters.get("outputOptions") or {}).get("mimeType", "image/png")
        count = int(parameters.get("sampleCount", 4))
        image = base64.b64encode(make_png(7, 7, (10, 10, 250))).decode()
        predictions = [{"bytesBase64Encoded": image, "mimeType": mime} for _ in range(count - reply.filtered)]
        predictions += [{"raiFilteredReason": "Filtered by the fake's safety system."}] * reply.filtered
        return web.json_response({"predictions": predictions})

    @staticmethod
    def refusal(body) -> str | None:
        if not isinstance(body, dict) or not body.get("instances") or not body["instances"][0].get("prompt"):
            return "instances[0].prompt is required."
        parameters = body.get("parameters") or {}
        for name in parameters:
            if name in MLDEV_REFUSED:
                return f"{name} parameter is not supported in Gemini API."
            if name not in IMAGEN_PARAMETERS:
                return f'Invalid JSON payload received. Unknown name "{name}" at \'parameters\'.'
        if not 1 <= int(parameters.get("sampleCount", 4)) <= 4:
            return "sampleCount must be between 1 and 4."
        if parameters.get("aspectRatio", "1:1") not in IMAGEN_RATIOS:
            return f"aspectRatio {parameters['aspectRatio']} is not supported."
        return None
