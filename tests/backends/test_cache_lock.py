"""ResponseCache: per-key locks shared by every process on the cache, invalidation."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from kec.backends.cache import ResponseCache

KEY = "ab" + "0" * 62


def _hold(directory: str, seconds: float, ready: multiprocessing.synchronize.Event) -> None:
    lock = ResponseCache(directory).lock(KEY)
    assert lock is not None
    with lock:
        ready.set()
        time.sleep(seconds)


def test_a_key_locked_by_another_process_is_busy_then_free(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_hold, args=(str(tmp_path), 1.0, ready))
    proc.start()
    try:
        assert ready.wait(30)
        cache = ResponseCache(tmp_path)
        assert cache.lock(KEY, blocking=False) is None  # held elsewhere
        other = cache.lock("cd" + "0" * 62, blocking=False)
        assert other is not None  # other keys are free
        with other:
            pass
        t0 = time.perf_counter()
        lock = cache.lock(KEY, blocking=True)  # waits for the other process
        assert lock is not None and time.perf_counter() - t0 > 0.2
        with lock:
            pass
    finally:
        proc.join(30)
    assert proc.exitcode == 0


def test_a_dead_holder_releases_its_lock(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_hold, args=(str(tmp_path), 60.0, ready))
    proc.start()
    assert ready.wait(30)
    proc.kill()
    proc.join(30)
    lock = ResponseCache(tmp_path).lock(KEY, blocking=False)
    assert lock is not None  # the kernel dropped the killed process's lock
    with lock:
        pass


def test_no_directory_and_read_only_caches_lock_trivially(tmp_path: Path) -> None:
    assert ResponseCache(None).lock(KEY, blocking=False) is not None
    blocker = tmp_path / "file"
    blocker.write_text("x")
    lock = ResponseCache(blocker).lock(KEY, blocking=False)  # cannot create .locks under it
    assert lock is not None
    with lock:
        pass


def test_invalidate_removes_the_entry(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    cache.put(KEY, {"text": "{}"})
    assert cache.get(KEY) == {"text": "{}"} and len(cache) == 1
    cache.invalidate(KEY)
    cache.invalidate(KEY)  # twice is fine
    assert cache.get(KEY) is None and len(cache) == 0
