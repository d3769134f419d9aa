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


def test_lock_files_are_removed_when_released(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    for key in (KEY, "cd" + "1" * 62):
        lock = cache.lock(key)
        assert lock is not None
        with lock:
            assert (tmp_path / ".locks" / key[:2] / f"{key}.lock").is_file()
    assert not list((tmp_path / ".locks").rglob("*.lock"))  # the files are gone


def _hammer(directory: str, marker: str, rounds: int, errors: multiprocessing.Queue) -> None:
    import os

    cache = ResponseCache(directory)
    for _ in range(rounds):
        lock = cache.lock(KEY, blocking=bool(_ % 2))
        if lock is None:  # busy: wait for it like the runner does
            lock = cache.lock(KEY, blocking=True)
        with lock:
            try:  # inside the lock nobody else may be inside
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                errors.put("two holders at once")
                continue
            time.sleep(0.0005)
            os.unlink(marker)


def test_removing_lock_files_keeps_the_lock_exclusive(tmp_path: Path) -> None:
    """Four processes take and release one key 150 times each while the holder removes
    the lock file every time: never two holders at once."""
    ctx = multiprocessing.get_context("fork")
    errors = ctx.Queue()
    marker = str(tmp_path / "inside")
    procs = [ctx.Process(target=_hammer, args=(str(tmp_path / "c"), marker, 150, errors))
             for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert errors.empty(), errors.get()
    assert not list((tmp_path / "c" / ".locks").rglob("*.lock"))
