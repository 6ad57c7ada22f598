"""The items of a response's output, in the Responses API's shapes (WIRE_FORMATS.md section 2):
a reasoning item (the reasoning as one summary_text, the signature as encrypted_content, so a
client replaying items statelessly gives it back), a message with one output_text (web search
citations as url_citation annotations over the span citing them; a provider's bare source list
spans the whole text), an image_generation_call per image the model drew, a web_search_call per
search the gateway made, a function_call per tool call. Input items sent back take the same shapes.
"""

import uuid
from typing import Any

from providers.types import UrlCitation, WebSearchCall


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
