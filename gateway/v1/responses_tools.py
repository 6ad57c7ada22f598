"""The Responses API's ``tools`` and ``tool_choice``, decoded for the canonical request.

    function      flat {"type": "function", "name", "parameters", ...} -> a canonical function tool
    namespace     {"type": "namespace", "name", "description", "tools": [...]}: how Codex groups its
                  MCP and app tools. Its function tools are flattened, each under the qualified name
                  ``qualified_name(namespace, name)`` (``mcp__github`` + ``search`` ->
                  ``mcp__github__search``; the default namespace ``functions`` keeps bare names), and
                  the model's call of one is answered as {"name": <its own name>, "namespace": ...},
                  which is how Codex routes calls (by the pair, never by parsing a flat name). Inner
                  tools of other types are handled as unknown tools (below).
    web_search    the gateway's own search (gateway.v1.web_search). ``external_web_access: false``
                  asks for cached results only (Codex's default); the gateway keeps no such index and
                  will not fetch live pages the client ruled out, so that tool is dropped: no search.
    code_interpreter, web_fetch   the gateway's own tools (gateway.serving.gateway_tools), run in its
                  tool loop for any model (gateway.v1.gateway_tool_options); tool_choice naming one
                  makes the model call it first.
    anything else custom (freeform), local_shell, image_generation, file_search, mcp, tool_search,
                  ...: the gateway cannot run them. They are not shown to the model
                  and the request is served; only a tool_choice that forces one (or "required" with
                  nothing callable left) is refused, since the model would then have to run it.
"""

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from gateway.v1.errors import GatewayError, bad_request
from gateway.v1.gateway_tool_options import decode_gateway_tool, is_gateway_tool
from gateway.v1.json_body import expect
from providers.types import WebSearchOptions

WEB_SEARCH_TOOLS = ("web_search", "web_search_preview", "web_search_2025_08_26", "web_search_preview_2025_03_11")
CONTEXT_SIZES = ("low", "medium", "high")
DEFAULT_NAMESPACE = "functions"  # Codex's namespace of top-level tools: their calls need no namespace
MAX_NAME = 64  # the shortest limit on a function's name among the providers (Gemini)
NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


@dataclass(slots=True)
class Tools:
    """What the model is shown, and what the response needs to answer its calls."""

    functions: list[dict[str, Any]] = field(default_factory=list)  # canonical function tools
    web_search: WebSearchOptions | None = None
    gateway: list[str] = field(default_factory=list)  # the gateway's own tools (providers.types.GATEWAY_TOOLS)
    echo: list[dict[str, Any]] = field(default_factory=list)  # the tools as the response object repeats them
    namespaced: dict[str, tuple[str, str]] = field(default_factory=dict)  # qualified name -> (namespace, name)
    dropped: dict[str, str] = field(default_factory=dict)  # a tool the gateway cannot run: its name -> its type


def qualified_name(namespace: str | None, name: str) -> str:
    """The one name the model sees for ``name`` in ``namespace``: ``<namespace>__<name>`` (one
    separator, also after a namespace ending in "_"), kept to the characters and length every
    provider takes (a digest replaces the tail of a longer one)."""
    if not namespace or namespace == DEFAULT_NAMESPACE:
        return name
    joined = NAME_UNSAFE.sub("_", namespace.rstrip("_") + "__" + name)
    if len(joined) <= MAX_NAME:
        return joined
    return joined[:MAX_NAME - 9] + "_" + hashlib.sha256(joined.encode()).hexdigest()[:8]


def decode_tools(value: Any) -> Tools:
    tools = Tools()
    if value is None:
        return tools
    expect(value, list, "tools", "a list of tools")
    tools.echo = value
    for index, tool in enumerate(value):
        where = f"tools[{index}]"
        expect(tool, dict, where, "a tool object")
        kind = tool.get("type")
        if kind in WEB_SEARCH_TOOLS:
            tools.web_search = decode_web_search(tool, where)
            if tools.web_search is None:
                tools.dropped["web_search"] = "web_search"
        elif kind == "function":
            tools.functions.append(decode_function(tool, where))
        elif is_gateway_tool(tool):
            name = decode_gateway_tool(tool, where)
            tools.gateway += [name] if name not in tools.gateway else []
        elif kind == "namespace":
            add_namespace(tools, tool, where)
        else:
            expect(kind, str, f"{where}.type", "a tool type")
            tools.dropped[tool.get("name") if isinstance(tool.get("name"), str) else kind] = kind
    return tools


def decode_function(tool: dict, where: str, *, name: str | None = None) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name or expect(tool.get("name"), str, f"{where}.name", "a string")}
    if tool.get("parameters") is not None:
        function["parameters"] = expect(tool["parameters"], dict, f"{where}.parameters", "a JSON schema object")
    if tool.get("description") is not None:
        function["description"] = expect(tool["description"], str, f"{where}.description", "a string")
    if tool.get("strict") is not None:
        function["strict"] = expect(tool["strict"], bool, f"{where}.strict", "true or false")
    return {"type": "function", "function": function}


def add_namespace(tools: Tools, tool: dict, where: str) -> None:
    namespace = expect(tool.get("name"), str, f"{where}.name", "the namespace's name")
    if not namespace:
        raise bad_request(f"'{where}.name' must not be empty.", param=f"{where}.name")
    inner = expect(tool.get("tools"), list, f"{where}.tools", "a list of function tools")
    for index, member in enumerate(inner):
        at = f"{where}.tools[{index}]"
        expect(member, dict, at, "a tool object")
        name = expect(member.get("name"), str, f"{at}.name", "a string")
        qualified = qualified_name(namespace, name)
        if member.get("type") == "function":
            tools.functions.append(decode_function(member, at, name=qualified))
            tools.namespaced[qualified] = (namespace, name)
        else:
            tools.dropped[qualified] = str(member.get("type"))


def decode_web_search(tool: dict, where: str) -> WebSearchOptions | None:
    """The gateway's search, or None when ``external_web_access`` is false (cached results only)."""
    extra = sorted(set(tool) - {"type", "search_context_size", "user_location", "external_web_access"})
    if extra:
        raise bad_request(f"'{where}.{extra[0]}' is not supported by the gateway's web search; remove it.",
                          param=f"{where}.{extra[0]}")
    access = tool.get("external_web_access")
    if access is not None and not expect(access, bool, f"{where}.external_web_access", "true or false"):
        return None
    size = tool.get("search_context_size") or "medium"
    if size not in CONTEXT_SIZES:
        raise bad_request(f"'{where}.search_context_size' must be one of {', '.join(CONTEXT_SIZES)}.",
                          param=f"{where}.search_context_size")
    location = tool.get("user_location") or {}
    expect(location, dict, f"{where}.user_location", "an object")
    country = location.get("country")
    if country is not None:
        expect(country, str, f"{where}.user_location.country", "a two-letter country code")
    return WebSearchOptions(context_size=size, country=country)


def cannot_run(name: str, kind: str) -> GatewayError:
    return bad_request(f"'tool_choice' makes the model call '{name}' ({kind}), a tool the gateway cannot run; "
                       "choose 'auto' or one of your function tools.", param="tool_choice")


def decode_tool_choice(value: Any, tools: Tools) -> tuple[str | dict[str, Any] | None, str | dict[str, Any]]:
    """The canonical tool_choice, and the response object's."""
    if value is None:
        return None, "auto"
    if value in ("none", "auto"):
        return value, value
    if value == "required":
        if tools.dropped and not tools.functions and not tools.gateway:
            name, kind = next(iter(tools.dropped.items()))
            raise cannot_run(name, kind)
        return value, value
    expect(value, dict, "tool_choice", "'none', 'auto', 'required' or {'type': 'function', 'name': ...}")
    kind = value.get("type")
    if kind in WEB_SEARCH_TOOLS:
        if tools.web_search is None and "web_search" in tools.dropped:
            raise cannot_run("web_search", "web_search with external_web_access false")
        return None, value  # the gateway searches before the model answers: nothing left to choose
    if kind in tools.gateway:  # the gateway's own tool, forced: the model's function of that name
        return {"type": "function", "function": {"name": kind}}, value
    if kind in ("function", "custom"):
        name = expect(value.get("name"), str, "tool_choice.name", "a function name")
        namespace = value.get("namespace")
        qualified = qualified_name(namespace if isinstance(namespace, str) else None, name)
        if qualified in tools.dropped or kind == "custom":
            raise cannot_run(name, tools.dropped.get(qualified, kind))
        return {"type": "function", "function": {"name": qualified}}, value
    if isinstance(kind, str) and kind != "allowed_tools":  # a hosted tool (file_search, image_generation, ...)
        raise cannot_run(kind, "a hosted tool")
    raise bad_request("'tool_choice' must be 'none', 'auto', 'required' or {'type': 'function', 'name': ...}; got "
                      f"{json.dumps(value)[:80]}.", param="tool_choice")
