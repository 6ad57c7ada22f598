"""Anthropic Messages API: ``POST {base_url}/v1/messages`` with ``x-api-key`` and
``anthropic-version: 2023-06-01``.

AnthropicAdapter is the glue; the translation lives by noun:
    anthropic_request    IR -> Anthropic: the body, headers (forwarded betas), thinking budget
    anthropic_answer     Anthropic -> IR: a Message, the stream's events
    anthropic_thinking   thinking blocks carried in our reasoning_signature and put back in a replay
    anthropic_errors     error bodies and ``event: error`` -> our error tree

Out (IR -> Anthropic):
    system / developer messages  -> top-level ``system`` (text blocks, in order) before the conversation;
                                    in it, a ``<system>`` text block of a user turn in its place
    user text / image parts      -> text blocks; images as ``source`` base64 (data: URLs) or url (http[s])
    assistant message            -> thinking blocks (from reasoning_signature), text, tool_use (input parsed)
    tool messages                -> tool_result blocks in a user turn; consecutive same-role turns merge
    max_output_tokens            -> max_tokens (always sent; see output_limits)
    stop / user                  -> stop_sequences / metadata.user_id
    tools / tool_choice          -> tools with input_schema / {"type": auto | any | none | tool}
    response_format json_schema  -> output_config.format (Anthropic's native structured outputs)
    thinking_budget              -> thinking {"type": "enabled", "budget_tokens": the budget, exactly}
    reasoning_effort (no budget) -> thinking {"type": "enabled", "budget_tokens": THINKING_BUDGETS[effort]}
    context_edits                -> context_management {"edits": ...} with its beta header
    anthropic_betas              -> anthropic-beta: those of FORWARDED_BETAS (others change nothing we
                                    send, or bring server tools and prices the gateway does not serve)
Back: see anthropic_answer.

Decisions:
- max_tokens is required upstream; without one from the client it is DEFAULT_MAX_TOKENS, or the
  provider quirk ``default_max_tokens``. The adapter does not know the catalog's model limits.
- Thinking: a client's own budget (thinking_budget, from /v1/messages) is sent as given, with
  max_tokens = ChatRequest.output_limit(), what admission reserved (the decoder checked the budget
  is under it). Otherwise the budget comes from THINKING_BUDGETS ("none" sends no thinking). Without
  a client max_tokens, max_tokens becomes max(default, budget + ANSWER_ROOM) (at most 32,000, the
  smallest output limit of the catalog's Claude models). With one, it caps thinking and answer
  together, as OpenAI's max_completion_tokens counts reasoning tokens: max_tokens is
  ChatRequest.output_limit() (a client's max_tokens under THINKING_OUTPUT_FLOOR, 2048, raised to it
  so both fit; admission reserves for the same figure) and the budget half of it, never under
  Anthropic's floor of 1024. A client's ``adaptive`` thinking reaches here as an effort (the IR has
  no such mode) and goes as that effort's budget, which every thinking Claude model takes.
- Structured output uses the native ``output_config.format`` rather than a forced tool: it works
  with thinking (forced tool_choice does not) and streams as plain text deltas. The schema's
  ``name`` and ``strict`` are not sent: Anthropic's constrained decoding is always strict.
- Refused before any call (UnsupportedFeature): ``seed``, ``response_format`` json_object (Anthropic
  constrains output only to a schema), images in system messages, non-base64 data URLs and image
  types other than jpeg/png/gif/webp, tool_choice forms other than none/auto/required/function.
- Dropped as having no Anthropic equivalent and changing no answer: ``Message.name``, image ``detail``.
- Thinking blocks go back unchanged, one-to-one in their places (anthropic_thinking). A stream sends
  each block's signature as the block ends. Temperature, top_p and tool_choice conflicts with
  thinking are left to Anthropic's 400.
- Errors: rate_limit_error / 429 -> ProviderRateLimited (Retry-After); overloaded_error (529),
  api_error, timeout_error, 408/409/5xx -> ProviderUnavailable; authentication, permission and
  billing errors -> ProviderAuthFailed (our credential's problem, not the client's); "prompt is
  too long" -> ContextWindowExceeded; other 4xx -> ProviderBadRequest with Anthropic's message.
"""

import json
from collections.abc import AsyncIterator
from contextlib import aclosing

import httpx

from providers.adapters.answers import malformed
from providers.adapters.anthropic.answer import (
    StreamTranslator,
    finish_reason,
    parse_message,
    parse_usage,
)
from providers.adapters.anthropic.errors import error_from_response
from providers.adapters.anthropic.request import (
    API_VERSION,
    build_body,
    build_request,
    messages_url,
)
from providers.adapters.base import Adapter
from providers.adapters.http_calls import fetch_json, relay_stream, timeout_for
from providers.types import ChatRequest, ChatResult, Finish, StreamEvent, Target, UsageReport

COUNTED = {"model", "messages", "system", "tools", "tool_choice", "thinking", "output_config"}  # count_tokens takes


class AnthropicAdapter(Adapter):
    OPERATIONS = frozenset({"complete", "stream", "count_tokens"})

    wire_format = "anthropic"

    async def complete(self, request: ChatRequest, target: Target) -> ChatResult:
        payload = await fetch_json(build_request(request, target, stream=False), target, error_from_response)
        return parse_message(payload, target)

    async def stream(self, request: ChatRequest, target: Target) -> AsyncIterator[StreamEvent]:
        translator = StreamTranslator(target)
        events = relay_stream(build_request(request, target, stream=True), target, error_from_response, translator,
                              end="message_stop")
        async with aclosing(events):
            async for event in events:
                yield event  # each thinking block's signature comes as the block ends
        yield Finish(finish_reason(translator.stop_reason))
        usage = parse_usage(translator.usage)
        if usage is not None:
            yield UsageReport(usage)

    async def count_tokens(self, request: ChatRequest, target: Target) -> int:
        """The request's input tokens by Anthropic's own count (``POST /v1/messages/count_tokens``,
        the Messages body without max_tokens and the sampling settings). Not billed by Anthropic."""
        body = {key: value for key, value in build_body(request, target, stream=False).items() if key in COUNTED}
        http_request = httpx.Request(
            "POST", f"{messages_url(target.base_url)}/count_tokens", headers={
                "x-api-key": target.api_key, "anthropic-version": API_VERSION, "content-type": "application/json"},
            content=json.dumps(body).encode(), extensions={"timeout": timeout_for(target).as_dict()})
        payload = await fetch_json(http_request, target, error_from_response)
        if not isinstance(payload.get("input_tokens"), int):
            raise malformed("a count_tokens answer without input_tokens", target)
        return payload["input_tokens"]


