"""The gateway's own tools, for every chat protocol: reading a web page (``web_fetch``) and running
Python (``code_interpreter``), offered to any model as function tools and run by the gateway in its
tool loop (gateway.serving.tool_loop).

    plan_tools(call, chat)      the plan's and the gateway's say (403 / 400), and the function tools
                                the model is offered; None when the client offered none
    loop_size(toolbox)          the loop's measures, for admission to reserve
    start(call, offset)         a model's call of a tool, as a ToolRun in progress
    execute(run, meter)         run it: its result for the model, what it did on the meter
    refuse(run, why)            answer it without running it

Decisions:
- Plan gating: each tool is a capability of its own (``web_fetch``, ``code_interpreter``) in the
  plan's allowed_capabilities, 403 capability_not_on_plan otherwise; code_interpreter without an
  executor (PYTHON_EXECUTOR_URL) is a 400 tool_not_configured.
- The model sees function tools named web_fetch ({"url"}) and code_interpreter ({"code"}); a client
  function of the same name as a tool it offers is a 400.
- A tool that fails (a URL the outbound policy or robots.txt refuses, a page without text, the
  executor unreachable, arguments that are not the tool's) is a result: the model reads why and
  answers; the request goes on. Only what was done is billed: a page read, the seconds a snippet ran
  (one that raised or ran out of time included; each at most its time limit plus a second, which
  admission reserved).
- The model reads a page's title, final URL and text (cut at WEB_FETCH_MAX_CHARS, marked); a
  snippet's stdout, stderr, value and error (cut at RESULT_CHARS together, marked).
"""

import json
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings

from billing.admission import ToolLoopSize
from billing.entitlements import Refusal, upgrade_hint
from gateway.serving.call import Call
from gateway.serving.errors import GatewayError
from gateway.serving.meter import Meter
from providers import code_executor, errors, web_fetch
from providers.types import CODE_INTERPRETER, WEB_FETCH, ChatRequest, ToolCall, ToolRun

log = logging.getLogger(__name__)

RESULT_CHARS = 20_000  # of a snippet's output the model reads
RESULT_OVERHEAD_CHARS = 1_000  # the labels and notes around a result
SECONDS_PAST_LIMIT = Decimal(1)  # the executor stops a snippet within half a second of its limit


@dataclass(frozen=True, slots=True)
class Toolbox:
    """The gateway tools a request offers its model (providers.types.GATEWAY_TOOLS)."""

    names: tuple[str, ...]
    max_calls: int  # tool calls the loop runs at most: TOOL_LOOP_MAX_CALLS, or the client's lower bound


def definition(name: str) -> dict[str, Any]:
    """The function tool the model is offered for ``name``."""
    if name == WEB_FETCH:
        return function(WEB_FETCH, "Read a web page: returns its title, its final URL and its readable text. Use it "
                        "for a URL the user gave or one you need to read. Cite the page by its URL when you use it.",
                        "url", "The page's full https:// URL.")
    limit = settings.CODE_INTERPRETER_TIMEOUT_SECONDS
    return function(CODE_INTERPRETER, "Run a Python 3 snippet in a fresh sandbox without network access and return "
                    "its stdout, stderr, the value of its last expression and any error. Nothing persists between "
                    f"runs: each snippet defines everything it uses. It may run for {limit:g} seconds.",
                    "code", "The Python source to run.")


def function(name: str, description: str, argument: str, about: str) -> dict[str, Any]:
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "properties": {argument: {"type": "string", "description": about}},
                       "required": [argument], "additionalProperties": False}}}


def plan_tools(call: Call, chat: ChatRequest) -> Toolbox | None:
    """Check the gateway tools ``chat`` offers against the plan and the gateway, and offer them to
    the model (as function tools after the client's own). None when it offers none."""
    if not chat.gateway_tools:
        return None
    caller = call.caller
    for name in chat.gateway_tools:
        if not caller.plan.allows_capability(name):
            raise Refusal(403, f"The {name} tool is not on plan {caller.plan.name}; {upgrade_hint(caller)}.",
                          type="permission_error", code="capability_not_on_plan")
    if CODE_INTERPRETER in chat.gateway_tools and not code_executor.is_available():
        raise GatewayError(400, "The code_interpreter tool is not available on this gateway: its operator has not "
                           "configured a Python executor (PYTHON_EXECUTOR_URL). Remove the tool, or ask the operator.",
                           param="tools", code="tool_not_configured")
    own = {tool["function"].get("name") for tool in chat.tools or () if isinstance(tool.get("function"), dict)}
    for name in chat.gateway_tools:
        if name in own:
            raise GatewayError(400, f"Your function '{name}' has the name of the gateway's {name} tool, which this "
                               "request offers too; rename your function.", param="tools", code="invalid_value")
    chat.tools = [*(chat.tools or []), *(definition(name) for name in chat.gateway_tools)]
    most = settings.TOOL_LOOP_MAX_CALLS
    return Toolbox(chat.gateway_tools, min(most, chat.max_tool_calls or most))


def most_seconds() -> Decimal:
    return Decimal(str(settings.CODE_INTERPRETER_TIMEOUT_SECONDS)) + SECONDS_PAST_LIMIT


def loop_size(toolbox: Toolbox) -> ToolLoopSize:
    """The most the loop can do (settings TOOL_LOOP_*), for admission to reserve."""
    result_chars = max(settings.WEB_FETCH_MAX_CHARS, RESULT_CHARS) + RESULT_OVERHEAD_CHARS
    return ToolLoopSize(model_calls=settings.TOOL_LOOP_MAX_ROUNDS + 1, tool_calls=toolbox.max_calls,
                        result_bytes=4 * result_chars, fetches=WEB_FETCH in toolbox.names,
                        code_seconds=most_seconds() if CODE_INTERPRETER in toolbox.names else Decimal(0))


def start(call: ToolCall, *, offset: int) -> ToolRun:
    """The model's call of a gateway tool, in progress; arguments that are not the tool's make it
    fail at once (execute)."""
    run = ToolRun(call_id=call.id, tool=call.name, offset=offset)
    argument = "url" if call.name == WEB_FETCH else "code"
    try:
        value = json.loads(call.arguments or "{}").get(argument)
    except (ValueError, AttributeError, RecursionError):  # not JSON, not an object, nested past reason
        value = None
    if isinstance(value, str) and value.strip():
        setattr(run, argument, value.strip() if argument == "url" else value)
    else:
        run.error = f'The arguments must be a JSON object with a string "{argument}"; got {call.arguments[:200]!r}.'
    return run


async def execute(run: ToolRun, meter: Meter) -> None:
    """Run the tool; a failure is the run's result (module docstring), never an exception."""
    if run.error:
        refuse(run, run.error)
        return
    try:
        if run.tool == WEB_FETCH:
            await read(run, meter)
        else:
            await run_snippet(run, meter)
    except errors.ProviderError as error:
        refuse(run, error.message)
    except Exception:  # a page or a redirect nothing foresaw: the model hears of it, the request goes on
        log.exception("the %s tool failed unexpectedly", run.tool)
        refuse(run, "the gateway could not run it (an unexpected error, logged for the operator); answer without it.")


def refuse(run: ToolRun, why: str) -> None:
    run.status, run.error = "failed", why
    run.output = f"The {run.tool} tool failed: {why}"


async def read(run: ToolRun, meter: Meter) -> None:
    page = await web_fetch.read_page(run.url)
    meter.fetched()
    run.status, run.url, run.title = "completed", page.final_url, page.title
    cut = f"\n\n[The text was cut at {len(page.text)} characters.]" if page.truncated else ""
    run.output = (f"Title: {page.title or '(none)'}\nURL: {page.final_url}\n\n{page.text}{cut}\n\n"
                  "Cite this page by its URL where you use it.")


async def run_snippet(run: ToolRun, meter: Meter) -> None:
    result = await code_executor.run_code(run.code, timeout=settings.CODE_INTERPRETER_TIMEOUT_SECONDS)
    run.seconds = min(result.seconds, most_seconds())
    meter.executed(run.seconds)
    run.status = "completed"  # the snippet ran: its error, if any, is its output
    sections = [("stdout", result.stdout), ("stderr", result.stderr), ("value of the last expression", result.result),
                ("error", result.error)]
    shown = [(label, text.rstrip("\n")) for label, text in sections if text]
    run.logs = "\n".join(text for _, text in shown)
    output = "\n\n".join(f"{label}:\n{text}" for label, text in shown) or "(The snippet printed nothing.)"
    if result.timed_out:
        output += f"\n\nThe snippet was stopped at its time limit of {settings.CODE_INTERPRETER_TIMEOUT_SECONDS:g}s."
    run.output = code_executor.clip(output, RESULT_CHARS)
