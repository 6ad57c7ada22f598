"""Reading vendors' answers: an answer not in the vendor's wire format is the provider's fault,
never the gateway's own 500, and unreadable usage never fails or zero-bills an answer.

    malformed(what, target)      ProviderMalformed (retryable) before output, ProviderStreamBroken after
    read_answer, checked_event   the router's last line of defence around every adapter call and
                                 stream event: a KeyError, TypeError, ... raised reading the answer
                                 (``unreadable``), or IR fields of the wrong type, become malformed
                                 (the traceback logged)
    token_count, usage_reader    a usage count that is not a whole number makes the usage unreadable:
                                 None, as if never reported, so the meter bills the estimate
"""

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from providers import errors
from providers.types import ChatResult, Delta, StreamEvent, Target, ToolCall, Usage

log = logging.getLogger(__name__)
T = TypeVar("T")

# What reading a vendor's answer raises when the answer is not the shape the adapter expects.
UNREADABLE = (KeyError, IndexError, TypeError, ValueError, AttributeError)


def malformed(what: str, target: Target, *, produced: bool = False) -> errors.ProviderError:
    """An answer not in the provider's wire format (``what`` it sent instead): ProviderMalformed,
    retryable, before any output; a broken stream once output began."""
    message = f"{target.provider} sent {what}."
    if produced:
        return errors.ProviderStreamBroken(message, provider=target.provider)
    return errors.ProviderMalformed(message, provider=target.provider)


def unreadable(exc: Exception, target: Target, *, produced: bool = False) -> errors.ProviderError:
    """An adapter failed reading a vendor's answer (a shape it did not check for): the traceback
    logged for the adapter's maintainer, the client told the provider's answer was malformed."""
    log.error("reading %s's answer failed: %s: %s", target.provider, type(exc).__name__, exc, exc_info=exc)
    return malformed(f"an answer the gateway could not read ({type(exc).__name__})", target, produced=produced)


async def read_answer(answer: Awaitable[T], target: Target) -> T:
    """An adapter call's result (the router awaits every call through this): a failure reading
    the vendor's answer, or a chat answer read into values not of the IR's types, is malformed."""
    try:
        result = await answer
    except UNREADABLE as exc:
        raise unreadable(exc, target) from exc
    if isinstance(result, ChatResult) and (problem := answer_problem(result)):
        raise malformed(problem, target)
    return result


def checked_event(event: StreamEvent, target: Target, *, produced: bool) -> StreamEvent:
    """A stream's event, checked as read_answer checks a whole answer (the router reads the event
    and makes a failure reading it ``unreadable``)."""
    if isinstance(event, Delta) and (problem := answer_problem(event)):
        raise malformed(problem, target, produced=produced)
    return event


TEXT_FIELDS = ("content", "reasoning", "reasoning_signature")


def answer_problem(answer: ChatResult | Delta) -> str | None:
    """What in an adapter's output is not of the IR's types (a vendor's field of the wrong type
    passed through), said as what the provider sent; None when all is well."""
    for name in TEXT_FIELDS:
        value = getattr(answer, name)
        if value is not None and not isinstance(value, str):
            return f"a {name} that is not text"
    for call in answer.tool_calls or ():
        if not (is_text(call.id) and is_text(call.name) and isinstance(call.arguments, str)
                and (isinstance(call, ToolCall) or type(call.index) is int)):
            return "a tool call that is not of its documented shape"
    if (answer.images or answer.citations) and not all(
            isinstance(item, str) for item in (*(answer.images or ()), *(answer.citations or ()))):
        return "an image or citation that is not text"
    return None


def is_text(value: Any) -> bool:
    return value is None or isinstance(value, str)


class UnreadableUsage(ValueError):
    """A vendor's usage that is not a set of token counts."""


def token_count(value: Any) -> int:
    """A token count in a vendor's usage: 0 when absent (None); UnreadableUsage unless a whole
    number >= 0 (a decimal string or an integral float, as some compatible servers send, is one)."""
    if value is None:
        return 0
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise UnreadableUsage(f"token count {value!r:.40}")


def usage_reader(parse: Callable[..., Usage | None]) -> Callable[..., Usage | None]:
    """For a wire format's usage parser: usage that cannot be read (not an object, a count that is
    not a number) is None, as if never reported. The answer is still served, and the meter bills
    it by estimate, flagged usage_estimated, rather than failing it or billing it nothing."""
    @functools.wraps(parse)
    def read(*args: Any) -> Usage | None:
        try:
            return parse(*args)
        except (ValueError, AttributeError, TypeError) as exc:
            log.warning("%s: usage the gateway cannot read (%s); the request is billed by estimate",
                        parse.__module__, exc)
            return None
    return read
