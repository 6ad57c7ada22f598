"""A cached answer and its JSON form: a chat's whole ChatResult (a streamed answer is kept as the
whole answer its events make, and replayed as events by the serving layer) or an embedding's
vectors, with who made it and what it cost then (what a hit saves)."""

import json
from dataclasses import asdict, dataclass
from decimal import Decimal

from providers.embedding_types import EmbeddingResult
from providers.types import ChatResult, Delta, ToolCall, UrlCitation, Usage

CHAT, EMBEDDING = "chat", "embedding"
DECIMAL_USAGE = ("video_seconds", "audio_seconds")


@dataclass(slots=True)
class CachedAnswer:
    kind: str  # CHAT | EMBEDDING
    result: ChatResult | EmbeddingResult
    served_model: str  # the public id of the model that answered (a fallback's, when it did)
    provider: str
    cost: Decimal  # what the request that made it was billed
    stored_at: float = 0.0  # epoch seconds (the store's clock)
    expires_at: float = 0.0
    match: str = "exact"  # how a lookup found it: "exact" or "semantic" (not kept)


def to_json(answer: CachedAnswer) -> str:
    body = {"kind": answer.kind, "served_model": answer.served_model, "provider": answer.provider,
            "cost": str(answer.cost), "stored_at": answer.stored_at, "expires_at": answer.expires_at,
            "result": asdict(answer.result)}
    return json.dumps(body, separators=(",", ":"), default=str)


def usage_from(data: dict) -> Usage:
    usage = Usage(**data)
    for name in DECIMAL_USAGE:
        setattr(usage, name, Decimal(str(getattr(usage, name))))
    return usage


def from_json(text: str) -> CachedAnswer:
    body = json.loads(text)
    data = body["result"]
    data["usage"] = usage_from(data["usage"])
    if body["kind"] == CHAT:
        data["tool_calls"] = [ToolCall(**call) for call in data["tool_calls"]]
        data["annotations"] = [UrlCitation(**citation) for citation in data["annotations"]]
        result = ChatResult(**data)
    else:
        result = EmbeddingResult(**data)
    return CachedAnswer(kind=body["kind"], result=result, served_model=body["served_model"],
                        provider=body["provider"], cost=Decimal(body["cost"]), stored_at=body["stored_at"],
                        expires_at=body["expires_at"])


class StreamedAnswer:
    """A streamed answer's events folded into the whole ChatResult they make."""

    def __init__(self) -> None:
        self.result = ChatResult(id="", content=None, finish_reason="", usage=Usage())
        self.calls: dict[int, ToolCall] = {}

    def add(self, delta: Delta) -> None:
        result = self.result
        if delta.content:
            result.content = (result.content or "") + delta.content
        if delta.reasoning:
            result.reasoning = (result.reasoning or "") + delta.reasoning
        if delta.reasoning_signature:
            result.reasoning_signature = (result.reasoning_signature or "") + delta.reasoning_signature
        for piece in delta.tool_calls or ():
            call = self.calls.setdefault(piece.index, ToolCall(id="", name="", arguments=""))
            call.id, call.name = piece.id or call.id, piece.name or call.name
            call.arguments += piece.arguments
        result.images += delta.images or []
        result.citations += [url for url in delta.citations or [] if url not in result.citations]
        result.annotations += delta.annotations or []
        if delta.logprobs:
            result.logprobs = (result.logprobs or []) + delta.logprobs
        if delta.text_logprobs:  # a legacy completion's: each of its lists goes on where the last chunk's ended
            kept = result.text_logprobs or {}
            result.text_logprobs = {name: [*(kept.get(name) or []), *(values or [])] if isinstance(values, list)
                                    else values for name, values in delta.text_logprobs.items()}

    def finish(self, reason: str, usage: Usage, upstream_model: str) -> ChatResult:
        result = self.result
        result.finish_reason, result.usage, result.upstream_model = reason, usage, upstream_model
        result.tool_calls = [self.calls[index] for index in sorted(self.calls)]
        return result
