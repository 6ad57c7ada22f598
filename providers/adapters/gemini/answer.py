"""Gemini answers, Gemini -> IR, whole (generateContent) or as an SSE stream (streamGenerateContent):
- text parts -> content; ``thought: true`` parts -> reasoning (thought images are dropped);
  ``inlineData`` parts -> images as ``data:<mime>;base64,...`` URLs; ``functionCall`` parts -> tool
  calls with Gemini's ``id`` when it sends one, else a unique ``call_<24 hex>`` (ids must not repeat
  across turns: clients key calls by id, and a fallback to Anthropic needs unique tool_use ids).
  A stream delivers each call whole: one ToolCallDelta with id, name and all arguments.
- ``reasoning_signature`` is ``{"gemini": [...]}``: the answer's parts in order (text by length,
  images by number, calls by id), each with its ``thoughtSignature``. It is sent when a part was
  signed or the order is not text, images, calls (streams send it once, just before the finish).
- finishReason STOP -> stop, or tool_calls when the answer has function calls; MAX_TOKENS ->
  length; the safety family (FILTERED) -> content_filter; FAILED (a malformed or unexpected call,
  OTHER) -> ProviderUnavailable, or ProviderStreamBroken once a stream has sent output; anything
  else -> stop. A prompt refused with ``promptFeedback.blockReason`` is a content_filter finish with
  empty content, never an error.
- usageMetadata: input = promptTokenCount (+ toolUsePromptTokenCount), cached = cachedContentTokenCount,
  output = candidatesTokenCount + thoughtsTokenCount, reasoning = thoughtsTokenCount. Streams use
  the last chunk that carries it; a count that is not a number leaves the answer billed by estimate.
- ``logprobsResult`` (asked with responseLogprobs) -> logprobs in OpenAI's shape, per chunk in a stream.
- An answer without a candidate (and no blockReason), or a stream event that is not a JSON object
  -> ProviderMalformed before output, ProviderStreamBroken after (answers.malformed).
"""

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from providers import errors
from providers.adapters.answers import malformed, token_count, usage_reader
from providers.adapters.gemini.errors import first_object
from providers.types import ChatResult, Delta, Target, ToolCall, ToolCallDelta, Usage

FILTERED = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
            "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION"}
# Finishes that leave no usable answer: an error (retryable before output), never an empty success.
FAILED = {"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS", "OTHER"}
SIGNED = "thoughtSignature"  # the wire key, also the key of a signed part in our reasoning_signature


def signed(part: dict[str, Any], signature: str | None) -> dict[str, Any]:
    if signature:
        part[SIGNED] = signature
    return part


class AnswerReader:
    """Reads one answer's parts in order, whole or chunk by chunk: gives tool calls their ids and
    numbers images, records the parts' order and thought signatures (``layout``), remembers the
    finish reason and the latest usage."""

    def __init__(self) -> None:
        self.tool_calls: list[ToolCall] = []
        self.image_count = 0
        # One entry per answer part, in order: {"text": <characters>} (consecutive text merges, as
        # a stream splits one part over chunks), {"image": <n>} or {"call": <id>}; each with the
        # part's thoughtSignature when it had one.
        self.layout: list[dict[str, Any]] = []
        self.finish: str | None = None
        self.finish_message = ""
        self.blocked = False
        self.usage: Usage | None = None

    def read(self, payload: dict[str, Any]) -> Delta | None:
        self.usage = parse_usage(payload) or self.usage
        if (payload.get("promptFeedback") or {}).get("blockReason"):
            self.blocked = True
        candidates = payload.get("candidates") or []
        if not candidates:
            return None
        candidate = candidates[0]
        self.finish = candidate.get("finishReason") or self.finish
        self.finish_message = str(candidate.get("finishMessage") or self.finish_message)
        text, thoughts, calls, images = [], [], [], []
        for part in (candidate.get("content") or {}).get("parts") or ():
            signature = part.get("thoughtSignature") or None
            if "functionCall" in part:
                calls.append(self.add_call(part["functionCall"], signature))
            elif "inlineData" in part:
                if part.get("thought"):
                    continue  # an interim "thought image", not part of the answer
                data = part["inlineData"]
                images.append(f"data:{data.get('mimeType') or 'image/png'};base64,{data.get('data', '')}")
                self.layout.append(signed({"image": self.image_count}, signature))
                self.image_count += 1
            elif "text" in part:
                (thoughts if part.get("thought") else text).append(part["text"])
                # A thought's signature goes back on the answer text that follows it.
                self.add_text("" if part.get("thought") else part["text"], signature)
        logprobs = parse_logprobs(candidate.get("logprobsResult"))
        if not (any(text) or any(thoughts) or calls or images or logprobs):
            return None
        return Delta(content="".join(text) or None, reasoning="".join(thoughts) or None,
                     tool_calls=calls or None, images=images or None, logprobs=logprobs)

    def add_call(self, call: dict[str, Any], signature: str | None) -> ToolCallDelta:
        # Gemini's own id when it sends one; else ours, unique, as clients and other providers'
        # histories (a fallback to Anthropic) expect of a tool call id.
        call_id = call["id"] if isinstance(call.get("id"), str) and call["id"] else f"call_{uuid.uuid4().hex[:24]}"
        index = len(self.tool_calls)
        tool_call = ToolCall(id=call_id, name=call.get("name", ""), arguments=json.dumps(call.get("args") or {}))
        self.tool_calls.append(tool_call)
        self.layout.append(signed({"call": call_id}, signature))
        return ToolCallDelta(index=index, id=tool_call.id, name=tool_call.name, arguments=tool_call.arguments)

    def add_text(self, text: str, signature: str | None) -> None:
        last = self.layout[-1] if self.layout else None
        if last is not None and "text" in last and not (signature and last.get(SIGNED)):
            last["text"] += len(text)
            if signature:
                last[SIGNED] = signature
        elif text or signature:
            self.layout.append(signed({"text": len(text)}, signature))

    def failed(self) -> bool:
        return self.finish in FAILED and not self.blocked

    def failure(self, target: Target, *, produced: bool) -> errors.ProviderError:
        message = self.finish_message[:200]
        detail = f": {message.replace(target.api_key, '[redacted]') if target.api_key else message}" if message else ""
        text = f"{target.provider} stopped without a usable answer (finishReason {self.finish}){detail}"
        if produced:  # part of the answer is already out: the client must learn it is incomplete
            return errors.ProviderStreamBroken(text, provider=target.provider)
        return errors.ProviderUnavailable(text, provider=target.provider)

    def finish_reason(self) -> str:
        if self.blocked or self.finish in FILTERED:
            return "content_filter"
        if self.finish == "MAX_TOKENS":
            return "length"
        return "tool_calls" if self.tool_calls else "stop"

    def signature(self) -> str | None:
        """The layout as our reasoning_signature when a replay needs it (a signed part, or an order
        other than text, images, calls)."""
        kinds = [next(key for key in ("text", "image", "call") if key in entry) for entry in self.layout]
        ranks = [("text", "image", "call").index(kind) for kind in kinds]
        default = ranks == sorted(ranks) and kinds.count("text") <= 1
        if default and not any(entry.get(SIGNED) for entry in self.layout):
            return None
        return json.dumps({"gemini": self.layout}, separators=(",", ":"))


@usage_reader
def parse_usage(payload: dict[str, Any]) -> Usage | None:
    raw = payload.get("usageMetadata")
    if not raw:
        return None
    thoughts = token_count(raw.get("thoughtsTokenCount"))
    return Usage(
        input_tokens=token_count(raw.get("promptTokenCount")) + token_count(raw.get("toolUsePromptTokenCount")),
        output_tokens=token_count(raw.get("candidatesTokenCount")) + thoughts,
        reasoning_tokens=thoughts,
        cached_tokens=token_count(raw.get("cachedContentTokenCount")),
    )


def parse_answer(payload: Any, target: Target) -> ChatResult:
    if not isinstance(payload, dict):
        raise malformed("an answer that is not a JSON object", target)
    reader = AnswerReader()
    delta = reader.read(payload) or Delta()
    if not payload.get("candidates") and not reader.blocked:
        raise malformed("an answer without a candidate", target)
    if reader.failed():  # nothing reached the client yet: the router may retry or fall back
        raise reader.failure(target, produced=False)
    content = delta.content
    if content is None and not (reader.tool_calls or delta.images):
        content = ""  # a refused prompt or an empty answer: empty text, as OpenAI answers a filtered one
    return ChatResult(
        id=f"chatcmpl-{payload.get('responseId') or uuid.uuid4().hex}",
        content=content,
        finish_reason=reader.finish_reason(),
        usage=reader.usage or Usage(),
        tool_calls=reader.tool_calls,
        reasoning=delta.reasoning,
        reasoning_signature=reader.signature(),
        images=delta.images or [],
        upstream_model=payload.get("modelVersion") or target.upstream_model,
        logprobs=delta.logprobs,
    )


def token_logprob(candidate: Any) -> dict[str, Any] | None:
    if not isinstance(candidate, dict) or not isinstance(candidate.get("token"), str):
        return None
    token = candidate["token"]
    return {"token": token, "logprob": float(candidate.get("logProbability") or 0.0), "bytes": list(token.encode())}


def parse_logprobs(result: Any) -> list[dict[str, Any]] | None:
    """``logprobsResult`` (the chosen token of each step, and the top candidates at that step) in
    OpenAI's shape: ``[{"token", "logprob", "bytes", "top_logprobs": [...]}]``."""
    if not isinstance(result, dict) or not isinstance(result.get("chosenCandidates"), list):
        return None
    tops = result.get("topCandidates") if isinstance(result.get("topCandidates"), list) else []
    entries = []
    for step, chosen in enumerate(result["chosenCandidates"]):
        entry = token_logprob(chosen)
        if entry is None:
            continue
        candidates = (tops[step] or {}).get("candidates") if step < len(tops) and isinstance(tops[step], dict) else ()
        entry["top_logprobs"] = [top for top in map(token_logprob, candidates or ()) if top is not None]
        entries.append(entry)
    return entries or None


async def read_chunks(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
    """JSON objects from ``data:`` lines, and from bare JSON spread over lines, which is how an
    error arrives inside a stream (python-genai's _api_client reads both the same way)."""
    pending: list[str] = []
    depth = 0
    async for line in lines:
        if line.startswith("data:"):
            yield first_object(json.loads(line[5:]))  # ValueError unless an object
        elif pending or line.strip().startswith(("{", "[")):
            pending.append(line)
            depth += line.count("{") + line.count("[") - line.count("}") - line.count("]")
            if depth <= 0:
                yield first_object(json.loads("\n".join(pending)))
                pending, depth = [], 0
    if pending:
        yield first_object(json.loads("\n".join(pending)))
