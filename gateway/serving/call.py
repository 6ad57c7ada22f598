"""One call to the gateway, as the serving layer sees it: who asks (an authenticated caller),
under which request id, with which of the client's own keys; and its outcome, filled in as it is
served: the rate window admission took, who served it (the router's trace), its meter (usage and
cost) and, for a chat, the answer or its stream. Entry points make a Call (an HTTP view from
the API key and headers, the playground from the member) and build their answer and its
response headers from the outcome, whether the call succeeded or failed."""

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from billing.entitlements import Caller
from billing.rate_limits import RateHold
from caching.policy import OFF, CacheDirectives, CachePolicy, CacheStatus
from gateway.serving.errors import GatewayError
from providers.router import Trace
from providers.types import ChatResult
from usage.attribution import MAX_TAGS, MAX_USER_CHARS
from usage.models import Ending

if TYPE_CHECKING:
    from billing.entitlements import Admission
    from gateway.serving.meter import Meter
    from gateway.serving.streams import ChatStream
    from usage.recording import Reservation


@dataclass(slots=True)
class Outcome:
    rate: RateHold | None = None  # where the key stands in its rate limits, once admission checked them
    trace: Trace | None = None  # who served (or was tried last), and how many attempts
    meter: "Meter | None" = None  # what an admitted request used and cost
    search_provider: str = ""  # the web search engine that grounded the request
    result: ChatResult | None = None  # a chat answered whole
    stream: "ChatStream | None" = None  # or its events, streamed
    video_id: str = ""  # the video job the call created
    cache: CacheStatus | None = None  # what the answer cache did (gateway.serving.cache)

    @property
    def served_model(self) -> str | None:
        """The public id of the model that answered (a fallback's, when it did)."""
        return self.trace.model.public_id if self.trace is not None and self.trace.model is not None else None

    @property
    def cost(self) -> Decimal | None:
        """What a whole answer cost, once settled (a stream's arrives in its last event)."""
        meter = self.meter
        if meter is None or meter.settling is None or meter.settlement.streamed:
            return None
        ending = meter.settlement.ending
        if ending == Ending.CACHE_HIT or (ending == Ending.COMPLETED and meter.settling.done()):
            return meter.cost()  # a hit's is its cache price, known before its record commits
        return None


@dataclass(slots=True)
class Call:
    caller: Caller
    request_id: str
    started: float = field(default_factory=time.monotonic)
    provider_key: str = ""  # the client's own key for the model's provider (x-provider-key), if any
    search_keys: dict[str, str] = field(default_factory=dict)  # its own search keys, by wire format
    scopes: tuple[str, ...] = ()  # its API key's (gateway.models.KEY_SCOPES); none for the playground
    cache_policy: CachePolicy = OFF  # the key's answer-cache settings (the playground's: off)
    cache_directives: CacheDirectives = CacheDirectives()  # what the request's headers asked of the cache
    # Who the call is for, as the client says (x-tollgate-user / x-tollgate-tags, or the body's
    # user and metadata: attribute()); recorded on its usage record, never trusted for access.
    end_user: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    outcome: Outcome = field(default_factory=Outcome)

    def admitted(self, admission: "Admission") -> "Reservation":
        """Admission's reservation for this call: its rate window goes in the outcome (headers), and
        who the call is for on the reservation (the usage record)."""
        self.outcome.rate = admission.rate
        reservation = admission.reservation
        reservation.end_user, reservation.tags = self.end_user, self.tags
        return reservation

    def attribute(self, user: str | None, metadata: dict[str, str] | None = None) -> None:
        """The body's ``user`` and ``metadata`` (their shapes checked by the protocol's decoder): the
        user replaces the header's, the metadata's keys join (and win over) the header's tags, at
        most MAX_TAGS together. A NUL character is a 400: no stored user or tag holds one (and a
        usage record that cannot be written is a request never billed)."""
        if user and "\x00" in user:
            raise GatewayError(400, "'user' contains a NUL character; send an id without one.", param="user")
        if any("\x00" in key or "\x00" in value for key, value in (metadata or {}).items()):
            raise GatewayError(400, "'metadata' contains a NUL character; send keys and values without one.",
                               param="metadata")
        if user:
            self.end_user = user[:MAX_USER_CHARS]
        if metadata:
            tags = {**self.tags, **metadata}
            if len(tags) > MAX_TAGS:
                raise GatewayError(400, f"x-tollgate-tags and 'metadata' carry {len(tags)} tags together; at most "
                                   f"{MAX_TAGS} are recorded. Send fewer.", param="metadata")
            self.tags = tags
