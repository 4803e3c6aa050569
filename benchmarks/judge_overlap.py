"""Generation overlapped with judging: the toy model on toy MM-Vet (at most 100 samples), judged by a local
OpenAI-compatible server that waits a fixed time per request, with judging after generation (sequential)
and with judging overlapped (`evalkit.runner.overlap`), each repeat with a fresh judge cache and run folder.
Prints generation alone, the wall seconds of each mode (summed over the repeats) and their ratio
(sequential / overlapped: the speed-up), next to the most overlap can give (sum / max of generation and
judging); checks that both modes stored the same rows (answers, judge outputs, scores). The defaults make
judging take about as long as the toy model's generation on a 2-core machine.

Usage: python benchmarks/judge_overlap.py [--samples 100] [--batch-size 1] [--sleep 0.025]
    [--concurrency 4] [--repeats 5]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.openai_server import FakeOpenAIServer, last_user_text  # noqa: E402

from evalkit.judges.settings import JudgeSettings  # noqa: E402
from evalkit.models.base import load_backend  # noqa: E402
from evalkit.runner import evaluate, load_tasks, overlap  # noqa: E402
from evalkit.util.environment import set_torch_threads  # noqa: E402

MODES = ("sequential", "overlapped")


def grade(body) -> str:
    """An MM-Vet grade (0.0 .. 1.0) derived from the grading message."""
    return f"{int(hashlib.sha256(last_user_text(body).encode()).hexdigest(), 16) % 11 / 10:.1f}"


def serve(sleep_s: float, url_queue, stop) -> None:
    """The server runs in its own process so that its CPU time is not charged to the run."""
    with FakeOpenAIServer(responder=grade, sleep_s=sleep_s) as server:
        url_queue.put(server.base_url)
        stop.wait()


def rows(run_dir: Path) -> list[dict]:
    """The stored rows without timings, nor the `cached` mark of judge calls: two samples whose judge calls
    are identical are both asked when judged in one chunk (sequential), but the second is served by the
    cache when the first was judged in an earlier chunk (overlapped)."""
    out = []
    for line in (run_dir / "samples" / "mmvet.jsonl").read_text().splitlines():
        row = {k: v for k, v in json.loads(line).items() if k != "latency_s"}
        row["judge"]["calls"] = [{k: v for k, v in c.items() if k != "cached"} for c in row["judge"]["calls"]]
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--sleep", type=float, default=0.025, help="seconds the judge takes per request")
    parser.add_argument("--concurrency", type=int, default=4, help="judge requests in flight")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each mode, alternating")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the toy model")
    args = parser.parse_args()

    set_torch_threads(args.threads)
    urls, stop = mp.Queue(), mp.Event()
    server = mp.Process(target=serve, args=(args.sleep, urls, stop), daemon=True)
    server.start()
    base_url = urls.get(timeout=30)
    backend = load_backend("toy")
    seconds = dict.fromkeys(("generation", *MODES), 0.0)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # the toy data built and the model warm before anything is timed
            (task,), loaded = load_tasks(["mmvet"], data="toy", limit=args.samples)
            requests = [task.request(s, 0) for s in loaded["mmvet"].samples]
            backend.generate(requests[: args.batch_size])
            for r in range(args.repeats):
                t0 = time.perf_counter()
                for start in range(0, len(requests), args.batch_size):
                    backend.generate(requests[start : start + args.batch_size])
                seconds["generation"] += time.perf_counter() - t0
                for mode in MODES:
                    overlap.ENABLED = mode == "overlapped"
                    cache = Path(tmp) / f"{mode}-{r}.db"
                    settings = JudgeSettings(
                        base_url=base_url, concurrency=args.concurrency, cache_path=cache
                    )
                    t0 = time.perf_counter()
                    evaluate(
                        backend, ["mmvet"], data="toy", limit=args.samples, batch_size=args.batch_size,
                        output=Path(tmp) / f"{mode}-{r}", judges=settings, progress=False,
                    )  # fmt: skip
                    seconds[mode] += time.perf_counter() - t0
                if rows(Path(tmp) / f"sequential-{r}") != rows(Path(tmp) / f"overlapped-{r}"):
                    raise SystemExit("sequential and overlapped runs stored different rows")
    finally:
        overlap.ENABLED = True
        backend.close()
        stop.set()
        server.join(timeout=10)
    generation = seconds["generation"]
    judging = max(seconds["sequential"] - generation, 0.0)
    print(
        f"toy MM-Vet, {len(requests)} samples at batch {args.batch_size}, {args.repeats} repeats; judge "
        f"{args.sleep * 1000:g} ms a request, {args.concurrency} in flight"
    )
    print(
        f"generation alone: {generation:.2f} s; judging alone (sequential minus generation): {judging:.2f} s"
    )
    print(f"sequential (generate, then judge): {seconds['sequential']:.2f} s")
    print(f"overlapped (judge while generating): {seconds['overlapped']:.2f} s")
    print(f"ratio sequential / overlapped: {seconds['sequential'] / seconds['overlapped']:.2f}x")
    if generation > 0 and judging > 0:
        bound = (generation + judging) / max(generation, judging)
        print(f"(the most overlap can give, sum / max of the two: {bound:.2f}x)")


if __name__ == "__main__":
    main()
