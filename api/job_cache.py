"""Job documents for the most polled route, ``GET /v1/jobs/{id}``: shared reads and a short-lived cache.

Fifty clients polling one job would otherwise each cost a database read. Concurrent reads of the same
job share one database read (single flight), and a finished read is reused for a TTL (a quarter
second by default), so polls still see every epoch and state change within the TTL. Writes made
through this API process (cancel) drop the entry at once, so a client reads its own writes. The TTL
comes from settings (``STAGERUN_API_JOB_CACHE_TTL_S``); 0 turns the reuse off, not the sharing."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

MAX_ENTRIES = 1024


class JobDocumentCache:
    """Used from the event loop only (no locks needed)."""

    def __init__(self, ttl_s: float, max_entries: int = MAX_ENTRIES):
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._in_flight: dict[str, asyncio.Future[bytes]] = {}

    async def get(self, job_id: str, load: Callable[[str], Awaitable[bytes]]) -> bytes:
        entry = self._entries.get(job_id)
        if entry is not None and entry[0] >= time.monotonic():
            return entry[1]
        in_flight = self._in_flight.get(job_id)
        if in_flight is not None:
            try:
                return await asyncio.shield(in_flight)
            except asyncio.CancelledError:
                if not in_flight.cancelled() or asyncio.current_task().cancelling():
                    raise
                return await self.get(job_id, load)  # the request that was reading went away: read again
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda done: done.cancelled() or done.exception())  # retrieved, never "unhandled"
        self._in_flight[job_id] = future
        try:
            document = await load(job_id)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            raise
        finally:
            del self._in_flight[job_id]
        future.set_result(document)
        if self.ttl_s > 0:
            self._entries[job_id] = (time.monotonic() + self.ttl_s, document)
            self._entries.move_to_end(job_id)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return document

    def drop(self, job_id: str) -> None:
        self._entries.pop(job_id, None)
