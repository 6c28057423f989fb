"""Dynamic batching: concurrent requests for one model are run as one ONNX Runtime call.

A worker takes the first queued request and everything queued behind it, up to ``max_batch`` rows. It waits up to
``max_wait_ms`` for more only while other requests are still being decoded (about to join); a lone request is run
at once, so batching costs nothing at concurrency 1. Inference runs in a thread (ONNX Runtime releases the GIL), so
the event loop keeps accepting and decoding requests while a batch computes; but a batch expected to take less than
INLINE_SECONDS (from the model's measured time per row) runs on the event loop itself: handing it to the thread and
back costs ~0.2 ms of CPU (measured: a one-row MLP batch took 36 us inline, 270 us through the thread), more than
such a model computes.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

INLINE_SECONDS = 0.0005  # a batch expected to compute in less runs on the event loop (no thread hand-over)
RECENT_BATCHES = 8  # the time per row is the fastest of this many recent batches

@dataclass
class _Item:
    feed: dict[str, np.ndarray]
    rows: int
    future: asyncio.Future


class Batcher:
    def __init__(self, model, max_batch: int, max_wait_ms: float, metrics=None):
        self.model = model
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        # the model's metric children, looked up once (prometheus' labels() per request costs more than the gauge)
        self._depth = metrics.queue_depth.labels(model.name) if metrics else None
        self._sizes = metrics.batch_size.labels(model.name) if metrics else None
        self.arriving = 0  # requests accepted and being decoded, not yet queued
        self.queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"onnx-{model.name}")
        self._task: asyncio.Task | None = None
        self._carry: _Item | None = None  # a request that did not fit the last batch: first in the next
        self._stopped = False
        # measured seconds per row of recent batches. Timing noise only ever adds time (a descheduled thread, a busy
        # core), so the model's cost is the fastest recent measurement: one hiccup cannot move a quick model off the
        # event loop, and a model that really got slower is seen within RECENT_BATCHES batches
        self._recent: deque[float] = deque(maxlen=RECENT_BATCHES)

    def start(self) -> None:
        """Start the worker on the running loop. The app's lifespan may run more than once (a test client runs it
        per client, each on its own loop): a restart gets a fresh queue and thread."""
        if self._stopped:
            self.queue, self._carry, self._stopped = asyncio.Queue(), None, False
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"onnx-{self.model.name}")
        self._task = asyncio.get_running_loop().create_task(self._work())

    async def stop(self) -> None:
        while not self.queue.empty() or self._carry:  # finish what was accepted (graceful shutdown)
            await asyncio.sleep(0.005)
        if self._task:
            self._task.cancel()
        self._executor.shutdown(wait=True)
        self._stopped = True

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def submit(self, feed: dict[str, np.ndarray], rows: int) -> np.ndarray:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put(_Item(feed, rows, future))
        self._gauge()
        return await future

    def _gauge(self) -> None:
        if self._depth is not None:
            self._depth.set(self.queue.qsize())

    async def _collect(self) -> list[_Item]:
        loop = asyncio.get_running_loop()
        first, self._carry = self._carry, None
        items = [first or await self.queue.get()]
        rows = items[0].rows
        deadline = loop.time() + self.max_wait
        while rows < self.max_batch:
            if not self.queue.empty():
                item = self.queue.get_nowait()
            elif self.arriving > 0 and loop.time() < deadline:
                try:
                    item = await asyncio.wait_for(self.queue.get(), deadline - loop.time())
                except asyncio.TimeoutError:
                    break
            else:
                break
            if rows + item.rows > self.max_batch:
                self._carry = item
                break
            items.append(item)
            rows += item.rows
        return items

    async def _run(self, feed: dict[str, np.ndarray], rows: int) -> np.ndarray:
        """The model on one batch: inline when it is expected to be quick, else in the inference thread; timed."""
        inline = bool(self._recent) and min(self._recent) * rows < INLINE_SECONDS
        if inline:
            out, seconds = self._timed_run(feed)
        else:
            out, seconds = await asyncio.get_running_loop().run_in_executor(self._executor, self._timed_run, feed)
        self._recent.append(seconds / max(rows, 1))
        return out

    def _timed_run(self, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, float]:
        """The model's output and its compute time, measured where it runs (not the hand-over to the thread)."""
        tic = time.perf_counter()
        out = self.model.run(feed)
        return out, time.perf_counter() - tic

    async def _work(self) -> None:
        while True:
            items = await self._collect()
            self._gauge()
            live = [it for it in items if not it.future.done()]  # a client that went away is not computed
            if not live:
                continue
            keys = live[0].feed.keys()
            feed = {k: np.concatenate([it.feed[k] for it in live]) if len(live) > 1 else live[0].feed[k] for k in keys}
            if self._sizes is not None:
                self._sizes.observe(sum(it.rows for it in live))
            try:
                out = await self._run(feed, sum(it.rows for it in live))
            except Exception as exc:  # noqa: BLE001
                if len(live) == 1:
                    if not live[0].future.done():
                        live[0].future.set_exception(exc)
                    continue
                # one request's data broke the batch: run each alone, so only that request fails
                for it in live:
                    try:
                        result = await self._run(it.feed, it.rows)
                    except Exception as one_exc:  # noqa: BLE001  (the waiting request answers 500)
                        if not it.future.done():
                            it.future.set_exception(one_exc)
                    else:
                        if not it.future.done():
                            it.future.set_result(result)
                continue
            start = 0
            for it in live:
                if not it.future.done():
                    it.future.set_result(out[start : start + it.rows])
                start += it.rows
