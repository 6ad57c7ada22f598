"""The items of a response's output, in the Responses API's shapes (WIRE_FORMATS.md section 2):
a reasoning item (the reasoning as one summary_text, the signature as encrypted_content, so a
client replaying items statelessly gives it back), a message with one output_text (web search
citations as url_citation annotations over the span citing them; a provider's bare source list
spans the whole text), an image_generation_call per image the model drew, a web_search_call per
search the gateway made, a function_call per tool call. The gateway's own tools (its tool loop) are
a web_search_call with an ``open_page`` action per page web_fetch read (the pages read cite the
answer after them when nothing else does), and a code_interpreter_call per snippet (its code, and
its output as logs, always included), each between the messages of the model calls around it.
Input items sent back take the same shapes.
"""

import uuid
from typing import Any

from providers.types import WEB_FETCH, ToolRun, UrlCitation, WebSearchCall

CONTAINER_ID = "cntr_gateway"  # every snippet runs in a fresh process: no container outlives it


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def message_item(role: str, content: list[dict[str, Any]], *, id: str | None = None) -> dict[str, Any]:
    return {"type": "message", "id": id or new_id("msg"), "role": role, "status": "completed", "content": content}


def output_text(text: str, annotations: list[dict[str, Any]] = (),
                logprobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": list(annotations), "logprobs": list(logprobs or ())}


def url_citation(citation: UrlCitation) -> dict[str, Any]:
    return {"type": "url_citation", "url": citation.url, "title": citation.title,
            "start_index": citation.start_index, "end_index": citation.end_index}


def source_citations(urls: list[str], text: str) -> list[dict[str, Any]]:
    """A provider's bare source list (search-grounded models) cites the whole answer."""
    return [url_citation(UrlCitation(url=url, title=url, start_index=0, end_index=len(text))) for url in urls]


def reasoning_item(text: str | None, signature: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "reasoning", "id": new_id("rs"),
                            "summary": [{"type": "summary_text", "text": text}] if text else []}
    if signature:
        item["encrypted_content"] = signature
    return item


def image_item(url: str) -> dict[str, Any]:
    """An image the model drew (a data: URL) as OpenAI returns one: base64, its format named."""
    header, _, data = url.partition(",")
    media_type = header[len("data:"):].partition(";")[0]
    return {"type": "image_generation_call", "id": new_id("ig"), "status": "completed", "result": data,
            "output_format": media_type.partition("/")[2] or "png"}


def web_search_item(search: WebSearchCall) -> dict[str, Any]:
    """A search the gateway made before the model answered (gateway.v1.web_search)."""
    return {"type": "web_search_call", "id": new_id("ws"), "status": "completed",
            "action": {"type": "search", "query": search.query,
                       "sources": [{"type": "url", "url": url} for url in search.urls]}}


def function_call_item(call_id: str | None, name: str, arguments: str, status: str,
                       tool_names: dict[str, tuple[str, str]] | None = None) -> dict[str, Any]:
    item = {"type": "function_call", "id": new_id("fc"), "call_id": call_id or new_id("call"), "name": name,
            "arguments": arguments, "status": status}
    return name_call(item, name, tool_names or {})


def name_call(item: dict[str, Any], name: str, tool_names: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """A call of a flattened namespace tool carries its own name and its namespace, which is how
    Codex routes it (responses_tools); any other call its name."""
    if name in tool_names:
        item["namespace"], item["name"] = tool_names[name]
    else:
        item["name"] = name
    return item


def tool_item(run: ToolRun, *, id: str | None = None) -> dict[str, Any]:
    """A gateway tool's run as its Responses item, as it stands (in progress, completed, failed)."""
    if run.tool == WEB_FETCH:
        return {"type": "web_search_call", "id": id or new_id("ws"), "status": run.status,
                "action": {"type": "open_page", "url": run.url}}
    logs = run.logs or run.error
    return {"type": "code_interpreter_call", "id": id or new_id("ci"), "status": run.status, "code": run.code,
            "container_id": CONTAINER_ID,
            "outputs": None if run.status == "in_progress" else [{"type": "logs", "logs": logs}] if logs else []}


def page_citations(pages: list[tuple[str, str]], text: str) -> list[dict[str, Any]]:
    """Pages web_fetch read, (url, title), citing the whole of an answer that cites nothing else."""
    return [url_citation(UrlCitation(url=url, title=title or url, start_index=0, end_index=len(text)))
            for url, title in pages]


def answer_items(text: str, citations: list[UrlCitation], runs: list[ToolRun], *, status: str,
                 logprobs: list[dict[str, Any]] | None, sources: list[str], whole: bool) -> list[dict[str, Any]]:
    """The answer's text as messages, cut where the gateway's tools ran (each run's item between
    them), each message's citations moved to its own text. ``whole``: the last message is there even
    without text (the answer has no calls or images)."""
    items: list[dict[str, Any]] = []
    start, pages = 0, []
    for run in runs:
        if text[start:run.offset]:
            items.append(message_item("assistant", [output_text(text[start:run.offset],
                                                                cited(citations, start, run.offset))]))
        items.append(tool_item(run))
        pages += [(run.url, run.title)] if run.tool == WEB_FETCH and run.status == "completed" else []
        start = run.offset
    last = text[start:]
    if last or whole:
        annotations = cited(citations, start, len(text)) or source_citations(sources, last) or page_citations(
            pages, last)
        items.append({**message_item("assistant", [output_text(last, annotations, logprobs)]), "status": status})
    return items


def cited(citations: list[UrlCitation], start: int, end: int) -> list[dict[str, Any]]:
    return [url_citation(UrlCitation(url=c.url, title=c.title, start_index=c.start_index - start,
                                     end_index=c.end_index - start))
            for c in citations if start <= c.start_index < end]
