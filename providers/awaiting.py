"""Awaiting by hand: step an awaitable once to see whether its result is ready, and go on
awaiting it only when it is not.

    waiting = send(message).__await__()
    try:
        signal = next(waiting)
    except StopIteration:
        ...  done at once, without a suspension
    else:
        await resume(waiting, signal)   as ``await`` would have, from where it stopped

gateway/asgi_responses.py writes a stream's parts this way: a client that keeps up takes a write
at once; only one that is behind gets a task to finish it in. A step left suspended must be
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
