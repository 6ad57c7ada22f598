"""The Responses API's event stream (WIRE_FORMATS.md section 2, Streaming), live and replayed.

    ResponseStream   a live answer's events (a gateway.v1.chat.StreamEncoder)
    replay(response) a stored response's events, as GET /v1/responses/{id}?stream=true sends them

Every event has ``event: <type>`` and ``data: {...}`` with ``sequence_number`` counted from 0.
Per output item: output_item.added, its content events, output_item.done; the stream ends with
response.completed / response.incomplete (the usage is only there), or response.failed carrying
the error, never with ``[DONE]``. A reasoning item stays open until the end of the answer:
providers send the reasoning's signature after the text.
"""

import json
from typing import Any

from gateway.v1.errors import GatewayError
from gateway.v1.openai_responses import ResponsesCall, failure_error, outcome, response_object
from gateway.v1.responses_output import (
    function_call_item,
    image_item,
    message_item,
    name_call,
    new_id,
    output_text,
    page_citations,
    source_citations,
    tool_item,
    url_citation,
    web_search_item,
)
from providers.types import WEB_FETCH, Delta, ToolCallDelta, ToolRun, Usage

WEB_SEARCH_STAGES = ("in_progress", "searching", "completed")
CODE_STAGES = ("in_progress", "interpreting", "completed")


def event(payload: dict[str, Any]) -> bytes:
    return (f"event: {payload['type']}\ndata: ".encode() + json.dumps(payload, separators=(",", ":")).encode()
            + b"\n\n")


class ResponseStream:
    """One response as the Responses event sequence (implements gateway.v1.chat.StreamEncoder):
    response.created and response.in_progress; per output item output_item.added, its content
    events (output_text / reasoning_summary_text / function_call_arguments deltas, done) and
    output_item.done; then the terminal response.completed / response.incomplete with the usage,
    or response.failed. ``final`` is the finished response object, set before settlement."""

    def __init__(self, call: ResponsesCall, *, response_id: str, model: str, created_at: int):
        self.call = call
        self.head = {"response_id": response_id, "model": model, "created_at": created_at}
        self.sequence = 0
        self.output: list[dict[str, Any]] = []
        self.open: set[int] = set()  # output indexes of items not done yet
        self.message: int | None = None  # the message item taking text now
        self.reasoning: int | None = None  # the reasoning item (open until the end: its signature comes last)
        self.summary_open = False
        self.calls: dict[int, int] = {}  # the IR's tool call index -> its item's output index
        self.sources: list[str] = []  # a provider's bare source list (Delta.citations)
        self.pages: list[tuple[str, str]] = []  # (url, title) of each page the gateway's web_fetch read
        self.tool: int | None = None  # the gateway tool's item running now (they run one at a time)
        self.status, self.incomplete = "completed", None
        self.final: dict[str, Any] | None = None

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, **fields, "sequence_number": self.sequence}
        self.sequence += 1
        return event(payload)

    def _response(self, status: str, **fields: Any) -> dict[str, Any]:
        return response_object(self.call, **self.head, status=status, **fields)

    def _add(self, item: dict[str, Any]) -> int:
        self.output.append(item)
        self.open.add(len(self.output) - 1)
        return len(self.output) - 1

    def _added(self, index: int) -> bytes:
        return self._event("response.output_item.added", output_index=index, item=self.output[index])

    def _done(self, index: int) -> bytes:
        self.open.discard(index)
        return self._event("response.output_item.done", output_index=index, item=self.output[index])

    def opening(self) -> bytes:
        snapshot = self._response("in_progress", output=[])
        out = self._event("response.created", response=snapshot) + self._event("response.in_progress",
                                                                                response=snapshot)
        # The gateway searched before the model was called: each search is done by now.
        for search in self.call.chat.web_search_calls:
            index = self._add(web_search_item(search))
            out += self._event("response.output_item.added", output_index=index,
                               item={**self.output[index], "status": "in_progress"})
            for stage in WEB_SEARCH_STAGES:
                out += self._event(f"response.web_search_call.{stage}", item_id=self.output[index]["id"],
                                   output_index=index)
            out += self._done(index)
        return out

    def delta(self, delta: Delta) -> bytes:
        out = b""
        if delta.reasoning:
            out += self._close_message() + self._reasoning_text(delta.reasoning)
        if delta.reasoning_signature:
            out += self._reasoning_item()
            item = self.output[self.reasoning]
            item["encrypted_content"] = item.get("encrypted_content", "") + delta.reasoning_signature
        if delta.content:
            out += self._close_summary() + self._text(delta.content, delta.logprobs or [])
        for citation in delta.annotations or ():
            out += self._annotate(url_citation(citation))
        self.sources += [url for url in delta.citations or () if url not in self.sources]
        for url in delta.images or ():
            out += self._close_summary() + self._close_message()
            index = self._add(image_item(url))
            out += self._event("response.output_item.added", output_index=index,
                               item={**self.output[index], "status": "in_progress", "result": None})
            out += self._done(index)
        for call in delta.tool_calls or ():
            out += self._close_summary() + self._close_message() + self._call_arguments(call)
        if delta.tool_run is not None:
            out += self._close_summary() + self._close_message() + self._tool_run(delta.tool_run)
        return out

    def _tool_run(self, run: ToolRun) -> bytes:
        """A gateway tool's item: added with its first events when it starts, done when it is."""
        kind = "web_search_call" if run.tool == WEB_FETCH else "code_interpreter_call"
        if self.tool is None:
            self.tool = index = self._add(tool_item(run))
            item = self.output[index]
            out = self._added(index) + self._event(f"response.{kind}.in_progress", item_id=item["id"],
                                                   output_index=index)
            if run.tool == WEB_FETCH:
                return out + self._event("response.web_search_call.searching", item_id=item["id"], output_index=index)
            where = {"item_id": item["id"], "output_index": index}
            return out + (self._event("response.code_interpreter_call_code.delta", **where, delta=run.code)
                          + self._event("response.code_interpreter_call_code.done", **where, code=run.code)
                          + self._event("response.code_interpreter_call.interpreting", **where))
        index, self.tool = self.tool, None
        item = self.output[index] = tool_item(run, id=self.output[index]["id"])
        if run.tool == WEB_FETCH and run.status == "completed":
            self.pages.append((run.url, run.title))
        out = b"" if run.status == "failed" else self._event(f"response.{kind}.completed", item_id=item["id"],
                                                              output_index=index)
        return out + self._done(index)

    def _reasoning_item(self) -> bytes:
        if self.reasoning is not None:
            return b""
        self.reasoning = self._add({"type": "reasoning", "id": new_id("rs"), "summary": []})
        return self._added(self.reasoning)

    def _reasoning_text(self, text: str) -> bytes:
        out = self._reasoning_item()
        item, index = self.output[self.reasoning], self.reasoning
        if not self.summary_open:
            item["summary"].append({"type": "summary_text", "text": ""})
            self.summary_open = True
            out += self._event("response.reasoning_summary_part.added", item_id=item["id"], output_index=index,
                               summary_index=len(item["summary"]) - 1, part={"type": "summary_text", "text": ""})
        item["summary"][-1]["text"] += text
        return out + self._event("response.reasoning_summary_text.delta", item_id=item["id"], output_index=index,
                                 summary_index=len(item["summary"]) - 1, delta=text)

    def _close_summary(self) -> bytes:
        if not self.summary_open:
            return b""
        self.summary_open = False
        item, index = self.output[self.reasoning], self.reasoning
        part, where = item["summary"][-1], {"item_id": item["id"], "output_index": index,
                                            "summary_index": len(item["summary"]) - 1}
        return (self._event("response.reasoning_summary_text.done", **where, text=part["text"])
                + self._event("response.reasoning_summary_part.done", **where, part=part))

    def _text(self, text: str, logprobs: list[dict[str, Any]]) -> bytes:
        out = b""
        if self.message is None:
            self.message = self._add({**message_item("assistant", []), "status": "in_progress"})
            out += self._added(self.message)
            item = self.output[self.message]
            item["content"].append(output_text(""))
            out += self._event("response.content_part.added", item_id=item["id"], output_index=self.message,
                               content_index=0, part=output_text(""))
        item = self.output[self.message]
        item["content"][0]["text"] += text
        item["content"][0]["logprobs"] += logprobs
        return out + self._event("response.output_text.delta", item_id=item["id"], output_index=self.message,
                                 content_index=0, delta=text, logprobs=logprobs)

    def _annotate(self, annotation: dict[str, Any]) -> bytes:
        if self.message is None:
            return b""
        item = self.output[self.message]
        annotations = item["content"][0]["annotations"]
        annotations.append(annotation)
        return self._event("response.output_text.annotation.added", item_id=item["id"], output_index=self.message,
                           content_index=0, annotation_index=len(annotations) - 1, annotation=annotation)

    def _close_message(self) -> bytes:
        if self.message is None:
            return b""
        index, self.message = self.message, None
        item = self.output[index]
        part = item["content"][0]
        if not part["annotations"]:
            part["annotations"] = (source_citations(self.sources, part["text"])
                                   or page_citations(self.pages, part["text"]))
        item["status"] = "incomplete" if self.status == "incomplete" else "completed"
        where = {"item_id": item["id"], "output_index": index, "content_index": 0}
        return (self._event("response.output_text.done", **where, text=part["text"], logprobs=part["logprobs"])
                + self._event("response.content_part.done", **where, part=part) + self._done(index))

    def _call_arguments(self, call: ToolCallDelta) -> bytes:
        out = b""
        if call.index not in self.calls:
            self.calls[call.index] = self._add(function_call_item(call.id, call.name or "", "", "in_progress",
                                                                  self.call.tool_names))
            out += self._added(self.calls[call.index])
        index = self.calls[call.index]
        item = self.output[index]
        if call.name and not item["name"]:
            name_call(item, call.name, self.call.tool_names)
        if call.arguments:
            item["arguments"] += call.arguments
            out += self._event("response.function_call_arguments.delta", item_id=item["id"], output_index=index,
                               delta=call.arguments)
        return out

    def finish(self, reason: str) -> bytes:
        self.status, self.incomplete = outcome(reason)
        out = self._close_summary() + self._close_message()
        for index in sorted(self.open):
            item = self.output[index]
            if item["type"] == "function_call":
                item["status"] = "incomplete" if self.status == "incomplete" else "completed"
                out += self._event("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                                   name=item["name"], arguments=item["arguments"])
            out += self._done(index)
        return out

    def closing(self, usage: Usage) -> bytes:
        self.final = self._response(self.status, output=self.output, usage=usage,
                                    incomplete_details=self.incomplete)
        return b""

    def done(self) -> bytes:
        return self._event(f"response.{self.final['status']}", response=self.final)

    def failure(self, error: GatewayError) -> bytes:
        failed = self._response("failed", output=self.output, error=failure_error(error))
        return self._event("response.failed", response=failed)


def replay(response: dict[str, Any], *, starting_after: int | None = None) -> list[bytes]:
    """A stored response as the events its stream sent (each text in one delta), numbered
    from 0; only those after ``starting_after`` when given."""
    events: list[dict[str, Any]] = []
    started = {**response, "status": "in_progress", "output": [], "usage": None, "completed_at": None}
    events += [{"type": "response.created", "response": started}, {"type": "response.in_progress", "response": started}]
    for index, item in enumerate(response["output"]):
        events += replay_item(index, item)
    events.append({"type": f"response.{response['status']}", "response": response})
    first = 0 if starting_after is None else starting_after + 1
    return [event({**payload, "sequence_number": number}) for number, payload in enumerate(events) if number >= first]


def replay_item(index: int, item: dict[str, Any]) -> list[dict[str, Any]]:
    at = {"item_id": item["id"], "output_index": index}
    kind = item["type"]
    if kind == "message":
        added = {**item, "status": "in_progress", "content": []}
    elif kind == "reasoning":
        added = {**item, "summary": []}
    elif kind == "function_call":
        added = {**item, "status": "in_progress", "arguments": ""}
    elif kind == "web_search_call":
        added = {**item, "status": "in_progress"}
    elif kind == "code_interpreter_call":
        added = {**item, "status": "in_progress", "outputs": None}
    else:
        added = item
    events = [{"type": "response.output_item.added", "output_index": index, "item": added}]
    if kind == "message":
        for number, part in enumerate(item["content"]):
            where = {**at, "content_index": number}
            empty = output_text("") if part["type"] == "output_text" else {"type": "refusal", "refusal": ""}
            events.append({"type": "response.content_part.added", **where, "part": empty})
            if part["type"] == "output_text":
                events += [{"type": "response.output_text.delta", **where, "delta": part["text"], "logprobs": []},
                           {"type": "response.output_text.done", **where, "text": part["text"], "logprobs": []}]
            events.append({"type": "response.content_part.done", **where, "part": part})
    elif kind == "reasoning":
        for number, part in enumerate(item["summary"]):
            where = {**at, "summary_index": number}
            events += [
                {"type": "response.reasoning_summary_part.added", **where, "part": {"type": "summary_text", "text": ""}},
                {"type": "response.reasoning_summary_text.delta", **where, "delta": part["text"]},
                {"type": "response.reasoning_summary_text.done", **where, "text": part["text"]},
                {"type": "response.reasoning_summary_part.done", **where, "part": part},
            ]
    elif kind == "web_search_call":
        events += [{"type": f"response.web_search_call.{stage}", **at} for stage in WEB_SEARCH_STAGES]
    elif kind == "code_interpreter_call":
        events += [{"type": "response.code_interpreter_call.in_progress", **at},
                   {"type": "response.code_interpreter_call_code.delta", **at, "delta": item["code"] or ""},
                   {"type": "response.code_interpreter_call_code.done", **at, "code": item["code"] or ""},
                   *({"type": f"response.code_interpreter_call.{stage}", **at} for stage in CODE_STAGES[1:])]
    elif kind == "function_call":
        events += [{"type": "response.function_call_arguments.delta", **at, "delta": item["arguments"]},
                   {"type": "response.function_call_arguments.done", **at, "name": item["name"],
                    "arguments": item["arguments"]}]
    events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    return events
