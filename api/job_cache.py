"""Job documents for the most polled route, ``GET /v1/jobs/{id}``: shared reads and a short-lived cache.

Fifty clients polling one job would otherwise each cost a database read. Concurrent reads of the same
job share one database read (single flight), and a finished read is reused for a TTL (a quarter
second by default), so polls still see every epoch and state change within the TTL. Writes made
through this API process (cancel) drop the entry at once, so a client reads its own writes. The TTL
comes from settings (``STAGERUN_API_JOB_CACHE_TTL_S``); 0 turns the reuse off, not the sharing.

Entries are keyed by job and by the reader's scope (``Principal.cache_scope``): a document read for
one owner is never handed to another, and a refused read (404) is never stored."""

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
        self._entries: OrderedDict[tuple[str, str], tuple[float, bytes]] = OrderedDict()
        self._in_flight: dict[tuple[str, str], asyncio.Future[bytes]] = {}

    async def get(self, job_id: str, scope: str, load: Callable[[], Awaitable[bytes]]) -> bytes:
        """The document of ``job_id`` as ``load()`` reads it for readers of ``scope``."""
        key = (job_id, scope)
        entry = self._entries.get(key)
        if entry is not None and entry[0] >= time.monotonic():
            return entry[1]
        in_flight = self._in_flight.get(key)
        if in_flight is not None:
            try:
                return await asyncio.shield(in_flight)
            except asyncio.CancelledError:
                if not in_flight.cancelled() or asyncio.current_task().cancelling():
                    raise
                return await self.get(job_id, scope, load)  # the request that was reading went away: read again
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda done: done.cancelled() or done.exception())  # retrieved, never "unhandled"
        self._in_flight[key] = future
        try:
            document = await load()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            raise
        finally:
            del self._in_flight[key]
        future.set_result(document)
        if self.ttl_s > 0:
            self._entries[key] = (time.monotonic() + self.ttl_s, document)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return document

    def drop(self, job_id: str) -> None:
        """Forget the job for every scope (after a write through this process)."""
        for key in [k for k in self._entries if k[0] == job_id]:
            del self._entries[key]
