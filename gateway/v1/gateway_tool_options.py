"""The gateway's own tools as clients ask for them in ``tools``, on Chat Completions and Responses
alike (gateway.serving.gateway_tools runs them): ``{"type": "web_fetch"}`` and
``{"type": "code_interpreter"}``, the latter in the Responses API's shape, with an optional
``container`` of "auto" or ``{"type": "auto"}`` (no files: the gateway keeps no containers, and
every snippet runs in a fresh one)."""

from typing import Any

from gateway.v1.errors import bad_request
from gateway.v1.json_body import expect
from providers.types import CODE_INTERPRETER, GATEWAY_TOOLS

CONTAINER_FIELDS = {"type", "file_ids", "memory_limit"}


def is_gateway_tool(tool: dict[str, Any]) -> bool:
    return tool.get("type") in GATEWAY_TOOLS


def decode_gateway_tool(tool: dict[str, Any], where: str) -> str:
    """The tool's name (providers.types.GATEWAY_TOOLS), its shape checked."""
    kind = tool["type"]
    extra = sorted(set(tool) - ({"type", "container"} if kind == CODE_INTERPRETER else {"type"}))
    if extra:
        raise bad_request(f"'{where}.{extra[0]}' is not supported by the gateway's {kind} tool; remove it.",
                          param=f"{where}.{extra[0]}")
    container = tool.get("container")
    if container is None or container == "auto":
        return kind
    if isinstance(container, str):
        raise bad_request(f"'{where}.container': the gateway keeps no containers (each snippet runs in a fresh "
                          "one); send \"auto\" or leave it out.", param=f"{where}.container")
    expect(container, dict, f"{where}.container", "\"auto\" or {'type': 'auto'}")
    if container.get("type") != "auto" or set(container) - CONTAINER_FIELDS:
        raise bad_request(f"'{where}.container' must be \"auto\" or {{'type': 'auto'}}.", param=f"{where}.container")
    if container.get("file_ids"):
        raise bad_request(f"'{where}.container.file_ids': files are not supported by the gateway's code_interpreter; "
                          "put the data in the conversation instead.", param=f"{where}.container.file_ids")
    return kind
