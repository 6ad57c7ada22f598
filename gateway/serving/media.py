"""Media calls (images, speech, transcription, video jobs): admission and the meter. The caller
wraps the provider call in ``async with meter:`` (its one settle site) and sets the usage to
record on ``meter.settlement`` once the media is kept."""

from billing import admission
from gateway.serving.call import Call
from gateway.serving.meter import Meter
from providers.router import ModelInfo
from providers.types import Usage
from usage.recording import Reservation


async def admit_media(call: Call, model: ModelInfo, *, most: Usage) -> Reservation:
    """Admit a media request that can make (and so cost) at most ``most``."""
    admitted = await admission.admit_media(call.caller, model, request_id=call.request_id, most=most,
                                           end_user=call.end_user)
    return call.admitted(admitted)


async def media_meter(call: Call, model: ModelInfo, *, most: Usage) -> Meter:
    """Admit the request and make its meter (answered whole: nothing streams)."""
    meter = Meter(await admit_media(call, model, most=most), started=call.started, streamed=False, input_estimate=0)
    meter.served_by(model)
    call.outcome.meter, call.outcome.trace = meter, meter.trace
    return meter
