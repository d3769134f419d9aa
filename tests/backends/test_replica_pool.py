"""The replica-pool policy on a fake clock: least load, ejection, re-probe, all down."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kec.backends.replica_pool import ReplicaPool, check_urls, public_url, read_url_file
from kec.errors import KecError

URLS = ["http://127.0.0.1:8001/v1", "http://127.0.0.1:8002/v1", "http://127.0.0.1:8003/v1"]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _pool(n: int = 3, eject_after: int = 2, cooldown: float = 10.0) -> tuple[ReplicaPool, Clock]:
    clock = Clock()
    return ReplicaPool(URLS[:n], eject_after=eject_after, cooldown=cooldown, clock=clock), clock


def test_requests_go_to_the_least_loaded_replica() -> None:
    pool, _ = _pool()
    held = [pool.acquire() for _ in range(6)]
    assert [r.in_flight for r in pool.replicas] == [2, 2, 2]
    a = held[0]
    pool.release(a)
    assert pool.acquire() is a  # the one with a free slot
    assert [r.max_in_flight for r in pool.replicas] == [2, 2, 2]


def test_one_at_a_time_is_round_robin() -> None:
    pool, _ = _pool()
    order = []
    for _ in range(7):
        r = pool.acquire()
        order.append(r.url)
        pool.reached(r, answered=True)
        pool.release(r)
    assert order == [URLS[0], URLS[1], URLS[2]] * 2 + [URLS[0]]
    assert [s["answered"] for s in pool.stats()] == [3, 2, 2]


def test_a_failing_replica_leaves_the_rotation_then_is_probed_again() -> None:
    pool, clock = _pool(n=2, eject_after=2, cooldown=10.0)
    a, b = pool.replicas
    for _ in range(2):
        pool.unreachable(a, "connection refused")
    assert not a.in_rotation and a.ejections == 1 and not pool.all_down()
    # cooling down: every request goes to b, however loaded
    picks = {pool.acquire().url for _ in range(5)}
    assert picks == {b.url} and b.in_flight == 5
    # after the cool-down a gets one probe at a time
    clock.now += 10.0
    assert pool.acquire() is a
    assert pool.acquire() is b  # a's probe is in flight: no second one
    pool.unreachable(a, "still refused")  # the probe fails: out for another cool-down
    pool.release(a)
    assert not a.in_rotation and a.ejections == 1  # one ejection, extended
    assert pool.acquire() is b
    clock.now += 10.0
    probe = pool.acquire()
    assert probe is a
    pool.reached(a, answered=True)
    pool.release(a)
    assert a.in_rotation and a.streak == 0
    assert pool.stats()[0] == {"url": a.public, "answered": 1, "failed_attempts": 3,
                               "ejections": 1, "max_in_flight": 1, "in_rotation": True}


def test_scattered_failures_do_not_eject() -> None:
    pool, _ = _pool(n=1, eject_after=2)
    (a,) = pool.replicas
    for _ in range(5):
        pool.unreachable(a, "drop")
        pool.reached(a, answered=True)
    assert a.in_rotation and a.ejections == 0 and pool.down_streak == 0


def test_all_down_keeps_trying_the_first_to_come_back() -> None:
    pool, clock = _pool(n=2, eject_after=1, cooldown=10.0)
    a, b = pool.replicas
    pool.unreachable(a, "refused")
    clock.now += 3.0
    pool.unreachable(b, "refused")
    assert pool.all_down() and pool.down_streak == 2
    assert pool.acquire() is a  # a's cool-down ends first
    pool.reached(b, answered=False)  # an HTTP error answer still says b is up
    assert not pool.all_down() and pool.down_streak == 0 and b.answered == 0


def test_a_pool_of_one_is_a_single_endpoint() -> None:
    pool, _ = _pool(n=1, eject_after=2)
    (a,) = pool.replicas
    for _ in range(4):
        pool.unreachable(a, "refused")
        assert pool.acquire() is a
    assert pool.all_down() and pool.down_streak == 4


@given(st.lists(st.tuples(st.sampled_from(["acquire", "release", "ok", "down", "tick"]),
                          st.integers(0, 2)), max_size=60))
def test_least_load_law(ops: list[tuple[str, int]]) -> None:
    """Whatever happened before, a request goes to a replica in rotation with the fewest
    requests in flight, unless a cooled-down replica is due for its probe or none is in
    rotation; in-flight counts always equal the requests not yet released."""
    pool, clock = _pool(n=3, eject_after=2, cooldown=5.0)
    held = []
    for op, k in ops:
        if op == "acquire":
            live = [r for r in pool.replicas if r.in_rotation]
            due = [r for r in pool.replicas if not r.in_rotation and r.in_flight == 0
                   and r.out_until is not None and r.out_until <= clock.now]
            least = min((r.in_flight for r in live), default=None)
            r = pool.acquire()
            if due:
                assert r in due
            elif live:
                assert r.in_rotation and r.in_flight - 1 == least
            held.append(r)
        elif op == "release" and held:
            pool.release(held.pop(k % len(held)))
        elif op == "ok":
            pool.reached(pool.replicas[k], answered=True)
        elif op == "down":
            pool.unreachable(pool.replicas[k], "x")
        elif op == "tick":
            clock.now += 2.5
        for r in pool.replicas:
            assert r.in_flight == sum(h is r for h in held)
        assert pool.all_down() == (not any(r.in_rotation for r in pool.replicas))


def test_check_urls() -> None:
    assert check_urls(["http://h:1/v1/", " https://h2/v1 "]) == ["http://h:1/v1", "https://h2/v1"]
    for bad, says in [("localhost:8000/v1", "http"), ("ftp://h/v1", "http"),
                      ("http:///v1", "host"), ("http://h:99999/v1", "port"),
                      ("http://h:x/v1", "port")]:
        with pytest.raises(KecError, match=says):
            check_urls([bad])
    with pytest.raises(KecError, match="listed twice"):
        check_urls(["http://h:1/v1", "http://user:pw@h:1/v1/"])
    # credentials never reach an error text
    with pytest.raises(KecError) as info:
        check_urls(["http://user:secret@h:1/v1", "http://h:1/v1"])
    assert "secret" not in str(info.value)
    assert public_url("http://u:p@h:1/v1?token=t") == "http://h:1/v1"


def test_read_url_file(tmp_path: Path) -> None:
    path = tmp_path / "urls.txt"
    path.write_text("# replicas\nhttp://a:1/v1\n\n  http://b:2/v1  # second\n")
    assert read_url_file(path) == ["http://a:1/v1", "http://b:2/v1"]
    path.write_text("# nothing\n\n")
    with pytest.raises(KecError, match="lists no URL"):
        read_url_file(path)
    with pytest.raises(KecError, match="not found"):
        read_url_file(tmp_path / "missing.txt")
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(KecError, match="cannot read"):
        read_url_file(path)


@pytest.mark.parametrize("bad", [{"urls": []}, {"eject_after": 0}, {"cooldown": -1.0}])
def test_invalid_pool(bad: dict[str, object]) -> None:
    opts: dict[str, object] = {"urls": URLS[:1], **bad}
    with pytest.raises(KecError):
        ReplicaPool(**opts)  # type: ignore[arg-type]
