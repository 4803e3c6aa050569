"""Judge throughput against a local OpenAI-compatible server that sleeps 50 ms per request.

Prints achieved throughput over the ideal (concurrency / latency) at concurrency 64 (target >= 0.8), and
the wall time of the fully cached re-run.
Usage: python benchmarks/judge_throughput.py [--calls 2000] [--concurrency 64] [--sleep 0.05]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.openai_server import FakeOpenAIServer  # noqa: E402

from evalkit.judges.cache import JudgeCache  # noqa: E402
from evalkit.judges.judge import JudgeSpec, make_judge, prompt_sha256  # noqa: E402
from evalkit.models.base import BackendOptions  # noqa: E402
from evalkit.types import Message  # noqa: E402


def serve(sleep_s: float, url_queue, stop) -> None:
    """The server runs in its own process so that its CPU time is not charged to the client."""
    with FakeOpenAIServer(sleep_s=sleep_s) as server:
        url_queue.put(server.base_url)
        stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--sleep", type=float, default=0.05)
    args = parser.parse_args()

    items = [(f"q{i}", (Message("user", f"Rate answer number {i}."),)) for i in range(args.calls)]
    urls, stop = mp.Queue(), mp.Event()
    server = mp.Process(target=serve, args=(args.sleep, urls, stop), daemon=True)
    server.start()
    base_url = urls.get(timeout=30)
    with tempfile.TemporaryDirectory() as tmp:
        options = BackendOptions(base_url=base_url, concurrency=args.concurrency)
        judge = make_judge(
            JudgeSpec("openai:bench-judge", max_tokens=16),
            prompt_sha256("bench"),
            options=options,
            cache=JudgeCache(Path(tmp) / "cache.sqlite"),
        )
        t0 = time.perf_counter()
        answers = judge.ask(items)
        cold = time.perf_counter() - t0
        assert all(a.error is None for a in answers), "judge calls failed"
        t0 = time.perf_counter()
        judge.ask(items)
        cached = time.perf_counter() - t0
        calls = judge.usage.calls
    stop.set()
    server.join(timeout=10)

    ideal = args.concurrency / args.sleep
    achieved = args.calls / cold
    print(
        f"{args.calls} judge calls, concurrency {args.concurrency}, server latency {args.sleep * 1000:.0f} ms"
    )
    print(f"cold run: {cold:.2f} s, {achieved:.0f} calls/s (ideal {ideal:.0f}/s); requests sent {calls}")
    print(f"throughput / ideal: {achieved / ideal:.3f}   (target >= 0.8)")
    print(f"fully cached re-run: {cached:.3f} s, {judge.usage.calls - calls} requests")


if __name__ == "__main__":
    main()
