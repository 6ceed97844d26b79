"""Form timing benchmark: can the time ``POST /subscribe`` takes tell a reader from a stranger?

Posts the public form for N active readers and N unknown addresses (default
1,000 each, every address once, so rate-limit buckets are as new for both),
interleaved at random over one keep-alive connection to ``serve --no-worker``
over real HTTP, and prints both latency distributions side by side with the
probability that a stranger's answer took longer than a reader's: 0.5 means the
timing says nothing (before the decision moved after the answer: about 0.8-0.9).

    .venv/bin/python -m bench.form_timing [--per-side 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import html
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

import httpx

from bench.common import bench_database, seed

SECRET = "bench-secret-key-0123456789abcdef"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve(url: str, port: int, var_dir: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LETTERBOX_")}
    env.update({
        "LETTERBOX_DATABASE_URL": url, "LETTERBOX_SECRET_KEYS": SECRET, "LETTERBOX_PORT": str(port),
        "LETTERBOX_PUBLIC_URL": "https://news.example.org", "LETTERBOX_FROM": "news@example.org",
        "LETTERBOX_VAR_DIR": var_dir, "LETTERBOX_LOG_LEVEL": "warning", "LETTERBOX_LOG_FORMAT": "json",
        "LETTERBOX_SUBSCRIBE_LIMIT_PER_CLIENT": "1000000",
    })
    process = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--no-worker"], env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("serve did not become ready")


def _post_all(port: int, plan: list[tuple[str, str]]) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {"reader": [], "stranger": []}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        token = html.unescape(_CSRF.findall(client.get("/subscribe").text)[0])
        for kind, email in plan:
            form = {"csrf": token, "email": email, "name": "", "website": "", "lists": "news"}
            started = time.perf_counter()
            answer = client.post("/subscribe", data=form)
            timings[kind].append(time.perf_counter() - started)
            if answer.status_code != 200:
                raise SystemExit(f"{answer.status_code}: {answer.text[:300]}")
    return timings


def _percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    return "  ".join(f"p{p} {ordered[min(len(ordered) - 1, len(ordered) * p // 100)] * 1000:6.2f} ms"
                     for p in (10, 50, 90, 99))


def _later_probability(slower: list[float], faster: list[float]) -> float:
    """P(a value of ``slower`` exceeds one of ``faster``), ties half: Mann-Whitney U over n·m, by ranks."""
    ranked = sorted([(v, 0) for v in slower] + [(v, 1) for v in faster])
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        average = (i + j + 1) / 2  # ranks i+1..j share their mean
        rank_sum += average * sum(1 for _, side in ranked[i:j] if side == 0)
        i = j
    n, m = len(slower), len(faster)
    return (rank_sum - n * (n + 1) / 2) / (n * m)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-side", type=int, default=1000)
    args = parser.parse_args()
    warm_up = 50
    with bench_database("letterbox_bench_form") as url, tempfile.TemporaryDirectory() as var_dir:
        asyncio.run(seed(url, args.per_side + warm_up))
        readers = [f"reader{g}@example.org" for g in range(1, args.per_side + warm_up + 1)]
        strangers = [f"stranger{g}@example.org" for g in range(1, args.per_side + warm_up + 1)]
        plan = [("reader", e) for e in readers] + [("stranger", e) for e in strangers]
        random.Random(7).shuffle(plan)
        port = _free_port()
        process = _serve(url, port, var_dir)
        try:
            _post_all(port, plan[: 2 * warm_up])
            timings = _post_all(port, plan[2 * warm_up:])
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
    print(f"reader   ({len(timings['reader'])}): {_percentiles(timings['reader'])}")
    print(f"stranger ({len(timings['stranger'])}): {_percentiles(timings['stranger'])}")
    print(f"P(stranger slower than reader) = {_later_probability(timings['stranger'], timings['reader']):.3f}"
          " (0.5: the timing tells nothing)")


if __name__ == "__main__":
    main()
