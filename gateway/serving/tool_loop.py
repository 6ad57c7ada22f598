"""The gateway's tool loop, for every chat protocol: the model asks for one of the gateway's tools
(gateway.serving.gateway_tools), the gateway runs it and hands the model its result, and calls the
model again, until it answers, asks for one of the client's own functions, or the rounds run out.

    complete(chat, chain, meter, toolbox)   the whole answer (one router call without a toolbox)
    stream(chat, chain, meter, toolbox)     its events (the router's own without a toolbox)

Rules:
- One request, one meter: every model call and tool run of the loop happens inside the meter
  scope serve_chat opened; meter.next_round() between model calls keeps what each used, summed at
  the end (admission reserved for the most calls and tools: billing.admission.ToolLoopSize).
- A model turn that calls only gateway tools is run: each call becomes a ToolRun on
  chat.tool_runs (streamed, a Delta carrying it when it starts and when it is done), the turn and
  one tool message per call join the conversation, and the model is called again.
- A turn that calls any of the client's own functions ends the loop: the client gets its own calls
  (numbered from 0), never the gateway's, which are dropped unrun. A turn without calls is the answer.
- At most TOOL_LOOP_MAX_ROUNDS rounds and TOOL_LOOP_MAX_CALLS tool calls in all (fewer if the
  client's max_tool_calls says so): the model call
  after the last round is asked with tool_choice "none", and a call past the most is answered
  without being run. A model that asks for tools all the same gets no more: its answer ends with
  STOPPED, finish reason "stop".
- The answer's text is every model call's text, joined; a ToolRun's offset is where in it the tool
  ran (Chat Completions shows the tool there, Responses an output item between messages). Reasoning
  streams from every call; the answer's signature is its last call's (earlier ones are held back).
- A tool's failure is the model's to read; a model call's failure ends the request as before, with
  what the earlier calls and tools did billed.
"""

import dataclasses
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from django.conf import settings

from gateway.serving import gateway_tools
from gateway.serving.gateway_tools import Toolbox
from gateway.serving.meter import Meter, estimate_input_tokens, prompt_size
from providers import router
from providers.types import (
    ChatRequest,
    ChatResult,
    Delta,
    Finish,
    Message,
    StreamEvent,
    ToolCall,
    ToolCallDelta,
    ToolRun,
    UsageReport,
)

STOPPED = ("\n\n[The gateway stopped running tools: a request runs at most {rounds} rounds of them. Ask again to "
           "go on.]")


@dataclass(slots=True)
class Loop:
    """The loop's state across model calls: rounds run, tool calls made, the text so far."""

    chat: ChatRequest
    toolbox: Toolbox
    rounds: int = 0
    calls: int = 0
    text: str = ""  # every finished model call's text, joined

    @property
    def is_over(self) -> bool:
        return self.rounds >= settings.TOOL_LOOP_MAX_ROUNDS

    def split(self, calls: list[ToolCall]) -> tuple[list[ToolCall], list[ToolCall]]:
        """(the gateway's calls, the client's)."""
        ours = [call for call in calls if call.name in self.toolbox.names]
        return ours, [call for call in calls if call.name not in self.toolbox.names]

    async def run_round(self, turn: Message, meter: Meter) -> AsyncIterator[ToolRun]:
        """Run ``turn``'s calls (the gateway's, all of them): each ToolRun as it starts (a copy)
        and once done; then the conversation holds the turn and the results, and the meter and
        tool_choice are ready for the next model call."""
        self.chat.messages.append(turn)
        self.rounds += 1
        for call in turn.tool_calls:
            run = gateway_tools.start(call, offset=len(self.text))
            self.chat.tool_runs.append(run)
            yield dataclasses.replace(run)
            if self.calls >= self.toolbox.max_calls:
                gateway_tools.refuse(run, f"not run: this request makes at most {self.toolbox.max_calls} tool calls.")
            else:
                self.calls += 1
                await gateway_tools.execute(run, meter)
            yield run
            self.chat.messages.append(Message(role="tool", content=run.output, tool_call_id=call.id))
        meter.next_round(estimate_input_tokens(*prompt_size(self.chat)))
        self.chat.tool_choice = "none" if self.is_over else self.next_choice()

    def next_choice(self) -> str | dict | None:
        """The client's tool_choice, unless it forced a tool: the model must be free to answer now."""
        choice = self.chat.tool_choice
        forced = choice == "required" or (isinstance(choice, dict) and (choice.get("function") or {}).get(
            "name") in self.toolbox.names)
        return "auto" if forced else choice

    def answer(self, result: ChatResult, theirs: list[ToolCall], *, stopped: bool) -> ChatResult:
        """The last model call's result as the request's answer: the client's calls only, the text
        of every call."""
        result.tool_calls = theirs
        content = result.content or ""
        if stopped:
            content += STOPPED.format(rounds=settings.TOOL_LOOP_MAX_ROUNDS)
            result.finish_reason = "stop"
        result.content = (self.text + content) or None
        return result


async def complete(chat: ChatRequest, chain: router.Chain, meter: Meter, toolbox: Toolbox | None) -> ChatResult:
    """The answer, every model call of it on ``meter`` (module docstring)."""
    loop = Loop(chat, toolbox) if toolbox is not None else None
    while True:
        result = await router.complete_chain(chat, chain, meter.trace)
        meter.answered(result)
        if loop is None:
            return result
        ours, theirs = loop.split(result.tool_calls)
        if theirs or not ours or loop.is_over:
            return loop.answer(result, theirs, stopped=bool(ours and not theirs))
        loop.text += result.content or ""
        turn = Message(role="assistant", content=result.content or None, tool_calls=ours,
                       reasoning=result.reasoning, reasoning_signature=result.reasoning_signature)
        async for _ in loop.run_round(turn, meter):
            pass


def stream(chat: ChatRequest, chain: router.Chain, meter: Meter, toolbox: Toolbox | None) -> AsyncIterator[StreamEvent]:
    """The answer's events (module docstring); without a toolbox, the router's."""
    if toolbox is None:
        return router.stream_chain(chat, chain, meter.trace)
    return looped(Loop(chat, toolbox), chain, meter)


async def looped(loop: Loop, chain: router.Chain, meter: Meter) -> AsyncIterator[StreamEvent]:
    while True:
        turn = Turn(loop.toolbox)
        events = router.stream_chain(loop.chat, chain, meter.trace)
        try:
            async for event in events:
                for out in turn.take(event):
                    yield out
        finally:
            await events.aclose()
        if turn.finish is None:
            return  # the provider ended without finishing: the relay says so
        ours, theirs = turn.ours(), turn.theirs
        if theirs or not ours or loop.is_over:
            for out in turn.ending(stopped=bool(ours and not theirs)):
                yield out
            return
        loop.text += turn.text
        meter.count_output(None, None, ours)  # held back from the client, so the relay never counted them
        async for run in loop.run_round(turn.message(ours), meter):
            yield Delta(tool_run=run)


@dataclass(slots=True)
class Turn:
    """One streamed model call: its text and reasoning pass on as they come, the client's tool
    calls too (renumbered); the gateway's calls, the signature and the finish are held until the
    call ends and the loop knows whether it was the answer."""

    toolbox: Toolbox
    text: str = ""
    reasoning: str = ""
    signature: str = ""
    finish: str | None = None
    gateway: dict[int, ToolCall] = field(default_factory=dict)  # the model's index -> the call so far
    client: dict[int, int] = field(default_factory=dict)  # the model's index -> the client's
    theirs: list[ToolCall] = field(default_factory=list)  # the client's, for the loop to see

    def take(self, event: StreamEvent) -> list[StreamEvent]:
        if isinstance(event, Finish):
            self.finish = event.reason
            return []
        if isinstance(event, UsageReport):
            return [event]
        self.text += event.content or ""
        self.reasoning += event.reasoning or ""
        self.signature += event.reasoning_signature or ""
        passed = [self.client_call(call) for call in event.tool_calls or () if self.is_client_call(call)]
        delta = dataclasses.replace(event, reasoning_signature=None, tool_calls=passed or None)
        return [delta] if delta != Delta() else []

    def is_client_call(self, call: ToolCallDelta) -> bool:
        if call.index in self.gateway:
            held = self.gateway[call.index]
            held.id, held.arguments = held.id or call.id or "", held.arguments + call.arguments
            return False
        if call.index not in self.client and call.name in self.toolbox.names:
            self.gateway[call.index] = ToolCall(id=call.id or "", name=call.name, arguments=call.arguments)
            return False
        return True

    def client_call(self, call: ToolCallDelta) -> ToolCallDelta:
        if call.index not in self.client:
            self.client[call.index] = len(self.client)
            self.theirs.append(ToolCall(id=call.id or "", name=call.name or "", arguments=""))
        return dataclasses.replace(call, index=self.client[call.index])

    def ours(self) -> list[ToolCall]:
        calls = [self.gateway[index] for index in sorted(self.gateway)]
        for call in calls:
            call.id = call.id or f"call_{uuid.uuid4().hex[:24]}"
        return calls

    def message(self, calls: list[ToolCall]) -> Message:
        return Message(role="assistant", content=self.text or None, tool_calls=calls,
                       reasoning=self.reasoning or None, reasoning_signature=self.signature or None)

    def ending(self, *, stopped: bool) -> list[StreamEvent]:
        out: list[StreamEvent] = [Delta(reasoning_signature=self.signature)] if self.signature else []
        if stopped:
            out.append(Delta(content=STOPPED.format(rounds=settings.TOOL_LOOP_MAX_ROUNDS)))
        return [*out, Finish("stop" if stopped else self.finish or "stop")]
