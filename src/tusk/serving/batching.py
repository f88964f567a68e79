"""Adaptive batching: requests that arrive while the model is busy share its next call.

One consumer per predictor takes everything queued (up to ``max_batch_size``
rows), stacks rows of the same signature, runs the model once in a worker
thread and hands each caller back exactly its own rows of the result. When the
model is idle a lone request runs at once, unless ``max_wait_ms`` asks it to
wait for company. So batching costs nothing at low load and multiplies
throughput under load, where a model call's fixed overhead dominates.

The batcher also expects the callers it has just answered to come back, as
clients under steady load do: after a call that answered N callers (while M
more queued), the next call waits for N + M requests, but never longer than
the last call took. Without that, the requests that queued during a call run
on their own while the callers just answered are still on their way back,
and two half-size batches take turns forever, each paying the model's whole
fixed cost. The wait is bounded by one model call, which is what running
without the latecomers would cost them; a lone client, answered alone, is
expected alone and never waits.

If a stacked call fails, each request of the batch is re-run alone, so one bad
request fails alone and never takes its neighbours down with it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tusk.errors import NotReady
from tusk.serving.tensors import Rows

__all__ = ["BatchOutput", "Batcher"]


@dataclass
class BatchOutput:
    """One caller's share of a model call."""

    outputs: dict[str, Any]  # output name → array with one entry per row of the caller
    served_by: Any  # what ran it (the predictor's model at that moment), for response headers
    batch_rows: int  # rows in the model call this came from


# run(rows, want) → ({output: array over all rows}, served_by); ``want`` names optional outputs (predict_proba)
RunFn = Callable[[Rows, frozenset[str]], tuple[dict[str, Any], Any]]


@dataclass
class _Item:
    rows: Rows
    want: frozenset[str]
    future: asyncio.Future[BatchOutput]
    signature: tuple[Any, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.signature = self.rows.signature


class Batcher:
    def __init__(self, run: RunFn, max_batch_size: int = 64, max_wait_ms: float = 0.0,
                 on_batch: Callable[[int], None] | None = None) -> None:
        self.run = run
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.on_batch = on_batch
        self._queue: deque[_Item] = deque()
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="tusk-model")
        self._task: asyncio.Task[None] | None = None
        self._inflight: list[_Item] = []  # taken from the queue, not yet answered
        self._expect = 0  # callers expected for the next call: those the last one answered, and those queued
        self._last_call = 0.0  # seconds the last model call took: how long after it the next one waits for them
        self._answered = 0.0  # when (loop time) the last call's callers were answered

    async def submit(self, rows: Rows, want: frozenset[str] = frozenset()) -> BatchOutput:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._consume())
        item = _Item(rows, want, asyncio.get_running_loop().create_future())
        self._queue.append(item)
        self._wake.set()
        return await item.future

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def close(self, drain_seconds: float = 30.0) -> None:
        """Answer what is queued (up to ``drain_seconds``), then stop; anything left fails with NotReady."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_seconds
        while self._task is not None and (self._queue or self._inflight) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for item in [*self._inflight, *self._queue]:
            _settle(item, exc=NotReady("the predictor was retired before it could answer; retry"))
        self._queue.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _consume(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
            await self._gather(loop)
            self._inflight = self._take()
            started = loop.time()
            for group in _by_signature(self._inflight):
                await self._run_group(group)
            self._answered = loop.time()
            self._last_call = self._answered - started
            self._expect = len(self._inflight) + len(self._queue)
            self._inflight = []

    async def _gather(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait for company before a call, until the batch is full: up to ``max_wait``; and, while fewer
        callers are queued than the last call leads to expect, up to the last call's duration after it answered
        (see the module's docstring)."""
        fixed = loop.time() + self.max_wait
        expected = self._answered + self._last_call
        while sum(i.rows.n for i in self._queue) < self.max_batch_size:
            now = loop.time()
            deadline = max(fixed, expected) if len(self._queue) < self._expect else fixed
            if now >= deadline:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), deadline - now)

    def _take(self) -> list[_Item]:
        """Queued items up to max_batch_size rows (a larger single request goes alone)."""
        batch: list[_Item] = []
        rows = 0
        while self._queue:
            nxt = self._queue[0]
            if batch and rows + nxt.rows.n > self.max_batch_size:
                break
            self._queue.popleft()
            if nxt.future.done():  # the caller went away
                continue
            batch.append(nxt)
            rows += nxt.rows.n
        return batch

    async def _run_group(self, group: list[_Item]) -> None:
        loop = asyncio.get_running_loop()
        want = frozenset().union(*(i.want for i in group))
        stacked = Rows.concat([i.rows for i in group])
        try:
            outputs, served_by = await loop.run_in_executor(self._executor, self.run, stacked, want)
        except Exception as exc:
            if len(group) == 1:
                _settle(group[0], exc=exc)
                return
            for item in group:  # find the culprit: each request alone
                await self._run_group([item])
            return
        if self.on_batch is not None:
            self.on_batch(stacked.n)
        start = 0
        for item in group:
            stop = start + item.rows.n
            _settle(item, BatchOutput({k: v[start:stop] for k, v in outputs.items()}, served_by, stacked.n))
            start = stop


def _settle(item: _Item, result: BatchOutput | None = None, exc: BaseException | None = None) -> None:
    if item.future.done():
        return
    if exc is not None:
        item.future.set_exception(exc)
    else:
        item.future.set_result(result)  # type: ignore[arg-type]


def _by_signature(batch: list[_Item]) -> list[list[_Item]]:
    groups: dict[tuple[Any, ...], list[_Item]] = {}
    for item in batch:
        groups.setdefault(item.signature, []).append(item)
    return list(groups.values())
