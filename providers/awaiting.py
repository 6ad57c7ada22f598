"""Awaiting by hand: step an awaitable once to see whether its result is ready, and go on
awaiting it only when it is not.

    step = anext(items)
    try:
        signal = step.send(None)
    except StopIteration as ready:
        ...  ready.value, without a suspension (nothing to time out, nothing to flush)
    else:
        value = await resume(step, signal)   as ``await step`` would have, from where it stopped

A stream's events mostly arrive several to a read, so most of them are ready when asked for: the
router then arms no timer for them (providers.router.next_item). A step left suspended must be
awaited next, before anything else: a timeout it entered runs against the awaiting task.
"""

import types
from collections.abc import Generator
from typing import Any


@types.coroutine
def resume(step, signal) -> Generator[Any, Any, Any]:
    """Go on with ``step``, suspended on ``signal``: yield what it yields to the event loop and pass
    back what the loop sends or throws in (a cancellation) until it returns. It runs in the
    awaiting task, so timeouts and cancellation reach it as they would reach ``await step``."""
    while True:
        try:
            sent = yield signal
        except BaseException as error:
            try:
                signal = step.throw(error)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                signal = step.send(sent)
            except StopIteration as stop:
                return stop.value
