"""Time and memory bounds of kec's OpenAI backend against a hostile server (issue 9 item 5).

Three server faults from ``tests/servers.py`` (real HTTP on loopback):

* ``stream``: a chunked body that never ends;
* ``huge``: a 50 MB body (with its ``Content-Length``);
* ``slowloris``: one byte every 0.2 s, never finishing.

Each case runs in a fresh child process, once with kec's ``OpenAIBackend`` (4 MiB body
cap, 10 s timeout, no retries) and once with the obvious alternative, the plain
``openai.AsyncOpenAI`` client kec used before (no cap, the same 10 s timeout, which is
httpx's per-read timeout: a trickling server resets it with every byte). The benchmark
cuts that client at ``--alt-timeout`` seconds on the stream (so that it cannot take the
machine's memory) and at ``--slowloris-cut`` seconds on the slowloris.
Printed per case: wall time, peak RSS growth over the child's baseline, and what the
client saw.

Run: ``python benchmarks/bench_faults.py`` (about a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = ("stream", "huge", "slowloris")


def _rss_mb() -> float:
    """Peak resident set size of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(case: str, variant: str, cut: float) -> dict[str, object]:
    sys.path.insert(0, str(ROOT))
    from kec.backends.base import ChatRequest
    from kec.backends.openai_backend import OpenAIBackend
    from tests.servers import FaultServer

    schema = {"type": "object", "properties": {"name": {"type": "string"}},
              "required": ["name"]}
    request = ChatRequest(({"role": "user", "content": "name it"},), schema)
    with FaultServer(default=case, huge_bytes=50 * 2**20, trickle_s=0.2) as fs:
        import httpx  # noqa: F401
        import openai  # noqa: F401  # imported before the baseline is taken

        base = _current_rss_mb()
        t0 = time.perf_counter()
        if variant == "kec":
            backend = OpenAIBackend("m", base_url=fs.base_url, timeout=10.0, max_retries=0,
                                    structured_output="json_object", breaker_threshold=0)
            [res] = backend.complete([request])
            seen = res.error or f"answer of {len(res.text or '')} chars"
        else:
            from openai import AsyncOpenAI

            async def plain() -> str:
                async with AsyncOpenAI(api_key="x", base_url=fs.base_url, max_retries=0,
                                       timeout=10.0) as client:
                    try:
                        resp = await asyncio.wait_for(client.chat.completions.create(
                            model="m", messages=[{"role": "user", "content": "name it"}]),
                            timeout=cut)
                        return f"accepted {len(resp.model_dump_json())} bytes"
                    except asyncio.TimeoutError:
                        return f"still reading when the benchmark cut it at {cut:g} s"
                    except Exception as exc:
                        return f"{type(exc).__name__}: {exc}"

            seen = asyncio.run(plain())
        elapsed = time.perf_counter() - t0
        sent = fs.bytes_sent
    return {"case": case, "variant": variant, "seconds": round(elapsed, 2),
            "peak_rss_growth_mb": round(max(_rss_mb() - base, 0.0), 1),
            "server_sent_mb": round(sent / 2**20, 1), "client_saw": str(seen)[:110]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alt-timeout", type=float, default=3.0,
                        help="seconds the uncapped client may read the never-ending stream")
    parser.add_argument("--slowloris-cut", type=float, default=30.0,
                        help="seconds the uncapped client may wait on the slowloris")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        cut = args.slowloris_cut if args.child[0] == "slowloris" else args.alt_timeout
        print(json.dumps(child(*args.child, cut)))
        return
    rows = []
    for case in CASES:
        for variant in ("kec", "plain openai client"):
            out = subprocess.run([sys.executable, __file__, "--alt-timeout",
                                  str(args.alt_timeout), "--slowloris-cut",
                                  str(args.slowloris_cut), "--child", case,
                                  "kec" if variant == "kec" else "plain"],
                                 capture_output=True, text=True, timeout=300, cwd=ROOT)
            if out.returncode != 0:
                raise SystemExit(out.stderr[-2000:])
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row["variant"] = variant
            rows.append(row)
    print(f"{'case':10s} {'client':20s} {'time s':>7s} {'peak RSS +MB':>12s} "
          f"{'server sent MB':>14s}  client saw")
    for r in rows:
        print(f"{r['case']:10s} {r['variant']:20s} {r['seconds']:7.2f} "
              f"{r['peak_rss_growth_mb']:12.1f} {r['server_sent_mb']:14.1f}  {r['client_saw']}")
    by = {(r["case"], r["variant"]): r for r in rows}
    for case in CASES:
        k, p = by[(case, "kec")], by[(case, "plain openai client")]
        print(f"{case}: kec {k['seconds']:.2f} s / +{k['peak_rss_growth_mb']:.0f} MB vs plain "
              f"{p['seconds']:.2f} s / +{p['peak_rss_growth_mb']:.0f} MB")


if __name__ == "__main__":
    main()
