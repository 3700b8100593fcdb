"""Run an async worker over many items, a bounded window at a time, results in input order, with progress.

The window (items started but not yet written) bounds memory on million-item inputs while keeping
the client's concurrency busy; results come back in input order so outputs are reproducible.
The progress bar (tqdm) shows items/s and the ETA, with calls, cache hits, retries, tokens and the
estimated cost beside it. An exception of a `fatal` type (EndpointFatal: an endpoint that cannot
serve the run) from any item in the window ends the run as soon as it is raised, not when its
turn comes.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TypeVar

from tqdm import tqdm

from data_prep.llm.errors import EndpointFatal

T = TypeVar("T")
R = TypeVar("R")


async def ordered_map(
    items: Iterable[T],
    worker: Callable[[T], Awaitable[R]],
    *,
    window: int,
    progress: tqdm | None = None,
    postfix: Callable[[], str] | None = None,
    fatal: tuple[type[BaseException], ...] = (EndpointFatal,),
) -> AsyncIterator[tuple[T, R]]:
    pending: deque[tuple[T, asyncio.Task]] = deque()
    failed: asyncio.Future = asyncio.get_running_loop().create_future()

    def done(task: asyncio.Task) -> None:
        if fatal and not task.cancelled() and isinstance(task.exception(), fatal) and not failed.done():
            failed.set_result(task.exception())
        if progress is not None:
            progress.update(1)
            if postfix is not None:
                progress.set_postfix_str(postfix(), refresh=False)

    iterator = iter(items)
    exhausted = False
    try:
        while True:
            while not exhausted and len(pending) < window:
                try:
                    item = next(iterator)
                except StopIteration:
                    exhausted = True
                    break
                task = asyncio.create_task(worker(item))
                task.add_done_callback(done)
                pending.append((item, task))
            if not pending:
                return
            item, task = pending[0]
            if fatal and not task.done():
                await asyncio.wait([task, failed], return_when=asyncio.FIRST_COMPLETED)
            if failed.done():
                raise failed.result()  # the rest of the window is cancelled below
            pending.popleft()
            yield item, await task
    finally:
        for _, task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*(t for _, t in pending), return_exceptions=True)


def progress_bar(total: int | None, description: str, enabled: bool) -> tqdm:
    return tqdm(total=total, desc=description, unit="item", disable=not enabled, dynamic_ncols=True, mininterval=0.5)
