"""Hand a streamed request body to blocking code in a worker thread, with back-pressure.

The event loop reads the body and queues its chunks; the worker reads them as a
file. Neither holds more than a few MiB, so a put of any size streams.
"""

from __future__ import annotations

import contextvars
import io
import queue
import threading
from collections.abc import Callable, Iterator
from typing import IO, TypeVar

import anyio
from starlette.requests import Request

from tusk.transfer import Pipe

__all__ = ["with_body"]

T = TypeVar("T")
_DEPTH = 16


async def with_body(request: Request, work: Callable[[IO[bytes]], T]) -> T:
    """Run ``work(body)`` in a thread while the body arrives; its result or exception comes back here."""
    chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=_DEPTH)
    finished = threading.Event()
    outcome: dict[str, object] = {}

    def source() -> Iterator[bytes]:
        while (chunk := chunks.get()) is not None:
            yield chunk

    def run() -> None:
        try:
            outcome["value"] = work(io.BufferedReader(Pipe(source()), 1 << 20))
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            finished.set()

    def put(chunk: bytes | None) -> None:
        while not finished.is_set():
            try:
                chunks.put(chunk, timeout=0.05)
                return
            except queue.Full:
                continue

    ctx = contextvars.copy_context()  # the caller's identity travels with the work
    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.to_thread.run_sync, lambda: ctx.run(run))
        async for chunk in request.stream():
            if finished.is_set():
                continue  # the work ended early (an error): drain the body, keep nothing
            if chunk:
                await anyio.to_thread.run_sync(put, chunk)
        await anyio.to_thread.run_sync(put, None)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
