import asyncio

import pytest

from api.job_cache import JobDocumentCache


class Loader:
    def __init__(self, delay: float = 0.05, fail: Exception | None = None):
        self.calls = 0
        self.delay = delay
        self.fail = fail

    async def __call__(self, job_id: str) -> bytes:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return f"{job_id}:{self.calls}".encode()


def read(cache: JobDocumentCache, job_id: str, load: Loader, scope: str = "owner:a"):
    return cache.get(job_id, scope, lambda: load(job_id))


def test_concurrent_reads_share_one_load():
    async def scenario():
        cache, load = JobDocumentCache(ttl_s=0), Loader()
        documents = await asyncio.gather(*(read(cache, "j", load) for _ in range(50)))
        assert load.calls == 1 and set(documents) == {b"j:1"}
        assert await read(cache, "j", load) == b"j:2"  # ttl 0: the next read after it is fresh

    asyncio.run(scenario())


def test_ttl_reuse_expiry_and_drop():
    async def scenario():
        cache, load = JobDocumentCache(ttl_s=0.2), Loader(delay=0)
        assert await read(cache, "j", load) == b"j:1"
        assert await read(cache, "j", load) == b"j:1"
        cache.drop("j")
        assert await read(cache, "j", load) == b"j:2"
        await asyncio.sleep(0.25)
        assert await read(cache, "j", load) == b"j:3"
        assert await read(cache, "k", load) == b"k:4"

    asyncio.run(scenario())


def test_errors_reach_every_waiter_and_are_not_cached():
    async def scenario():
        cache, load = JobDocumentCache(ttl_s=10), Loader(fail=LookupError("no job"))
        results = await asyncio.gather(*(read(cache, "j", load) for _ in range(5)), return_exceptions=True)
        assert load.calls == 1 and all(isinstance(r, LookupError) for r in results)
        load.fail = None
        assert await read(cache, "j", load) == b"j:2"

    asyncio.run(scenario())


def test_follower_reads_again_when_the_leader_is_cancelled():
    async def scenario():
        cache, load = JobDocumentCache(ttl_s=0), Loader(delay=0.1)
        leader = asyncio.create_task(read(cache, "j", load))
        await asyncio.sleep(0.01)
        follower = asyncio.create_task(read(cache, "j", load))
        await asyncio.sleep(0.01)
        leader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leader
        assert await follower == b"j:2" and load.calls == 2

    asyncio.run(scenario())


def test_entries_are_bounded():
    async def scenario():
        cache, load = JobDocumentCache(ttl_s=10, max_entries=3), Loader(delay=0)
        for job_id in "abcd":
            await read(cache, job_id, load)
        assert [job_id for job_id, _scope in cache._entries] == ["b", "c", "d"]

    asyncio.run(scenario())


def test_scopes_never_share_a_document_and_drop_forgets_all_scopes():
    async def scenario():
        cache, load = JobDocumentCache(ttl_s=10), Loader(delay=0)
        assert await read(cache, "j", load, scope="owner:a") == b"j:1"
        assert await read(cache, "j", load, scope="owner:b") == b"j:2"
        assert await read(cache, "j", load, scope="owner:a") == b"j:1"
        cache.drop("j")
        assert await read(cache, "j", load, scope="owner:a") == b"j:3"
        assert await read(cache, "j", load, scope="owner:b") == b"j:4"

    asyncio.run(scenario())
