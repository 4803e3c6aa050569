"""Judge throughput of evalkit's own aiohttp client (A) against the official `openai` SDK on its aiohttp
transport, interleaved A/B/C/A/B/C in one process against one local server that sleeps 50 ms per request.
B calls the typed `chat.completions.create`; C posts the same JSON body with `client.post` and takes the
raw response (no parameter transform, no response models: the SDK as a bare transport).

Each run is a fresh judge with an empty cache. Prints every run's throughput over the ideal
(concurrency / latency) and the client's CPU time per call, then each SDK run's ratio to the A run of
its round, with median and spread. The SDK transport is read from git (`--sdk-ref`, the last commit that
had it), as it was measured. Needs `pip install openai httpx-aiohttp` (tested with openai 3.63.0).
Usage: python benchmarks/judge_throughput_sdk.py [--rounds 8] [--calls 2000] [--concurrency 64] [--sleep 0.05]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SDK_REF = "6c42890a1532d26900786ed0974f6bb84074ff49"  # the last commit with evalkit/models/openai_sdk.py
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from judge_throughput import serve  # noqa: E402

from evalkit.judges.cache import JudgeCache  # noqa: E402
from evalkit.judges.judge import JudgeSpec, make_judge, prompt_sha256  # noqa: E402
from evalkit.models.base import BackendOptions  # noqa: E402
from evalkit.types import Message  # noqa: E402


def sdk_client_class(ref: str) -> type:
    """`OpenAISDKClient` of evalkit/models/openai_sdk.py at `ref`: the SDK transport, measured as it was
    written (it is not kept in the package: the measurement decided against it)."""
    path = "evalkit/models/openai_sdk.py"
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{ref}:{path}"], capture_output=True, text=True, check=True
    ).stdout
    module = types.ModuleType("openai_sdk_measured")
    exec(compile(source, f"{ref}:{path}", "exec"), module.__dict__)
    return module.OpenAISDKClient


CLIENTS = {
    "A": "evalkit's own aiohttp client (today's transport)",
    "B": "openai SDK on DefaultAioHttpClient, client.chat.completions.create(...)",
    "C": "openai SDK on DefaultAioHttpClient, client.post('/chat/completions', cast_to=httpx2.Response)",
}


def one_run(
    client: str, base_url: str, calls: int, concurrency: int, tag: str, sdk: type
) -> tuple[float, float]:
    """Wall seconds and client CPU seconds of `calls` fresh judge calls through `client` (a `CLIENTS` key)."""
    items = [(f"{tag}{i}", (Message("user", f"Rate answer number {i} of run {tag}."),)) for i in range(calls)]
    with tempfile.TemporaryDirectory() as tmp:
        options = BackendOptions(base_url=base_url, concurrency=concurrency)
        judge = make_judge(
            JudgeSpec("openai:bench-judge", max_tokens=16),
            prompt_sha256("bench"),
            options=options,
            cache=JudgeCache(Path(tmp) / "cache.sqlite"),
        )
        if client in "BC":
            old = judge.backend.client
            judge.backend.client = sdk(
                old.model,
                base_url,
                concurrency=old.concurrency,
                timeout_s=old.timeout_s,
                sdk_call="create" if client == "B" else "raw",
            )
        c0, t0 = time.process_time(), time.perf_counter()
        answers = judge.ask(items)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        failed = [a.error for a in answers if a.error is not None]
        assert not failed, f"{len(failed)} judge calls failed, e.g. {failed[0]}"
        assert judge.usage.calls == calls, f"{judge.usage.calls} requests for {calls} calls"
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--sleep", type=float, default=0.05)
    parser.add_argument("--sdk-ref", default=SDK_REF, help="commit to take the SDK transport from")
    args = parser.parse_args()
    sdk = sdk_client_class(args.sdk_ref)

    urls, stop = mp.Queue(), mp.Event()
    server = mp.Process(target=serve, args=(args.sleep, urls, stop), daemon=True)
    server.start()
    base_url = urls.get(timeout=30)
    ideal = args.concurrency / args.sleep
    print(
        f"{args.calls} judge calls per run, concurrency {args.concurrency}, server latency "
        f"{args.sleep * 1000:.0f} ms, ideal {ideal:.0f} calls/s"
    )
    for client, what in CLIENTS.items():
        print(f"  {client} = {what}")
    for client in CLIENTS:  # warm-up (imports, first connections), not counted
        one_run(client, base_url, min(args.calls, 256), args.concurrency, f"w{client}", sdk)
    share: dict[str, list[float]] = {c: [] for c in CLIENTS}
    for r in range(args.rounds):
        line = [f"round {r + 1}:"]
        for client in CLIENTS:
            wall, cpu = one_run(client, base_url, args.calls, args.concurrency, f"{client}{r}-", sdk)
            share[client].append(args.calls / wall / ideal)
            line.append(f"{client} {share[client][-1]:.3f} ({cpu / args.calls * 1e6:.0f} µs CPU/call)")
        line += [f"{c}/A {share[c][-1] / share['A'][-1]:.3f}" for c in CLIENTS if c != "A"]
        print("  ".join(line), flush=True)
    stop.set()
    server.join(timeout=10)

    for client in CLIENTS:
        s = share[client]
        print(f"{client}: median {statistics.median(s):.3f} of ideal, range {min(s):.3f}-{max(s):.3f}")
    for client in [c for c in CLIENTS if c != "A"]:
        ratios = [x / a for a, x in zip(share["A"], share[client], strict=True)]
        spread = statistics.stdev(ratios) if len(ratios) > 1 else 0.0
        print(
            f"{client}/A: median {statistics.median(ratios):.3f}, mean {statistics.mean(ratios):.3f} "
            f"± {spread:.3f} (stdev), range {min(ratios):.3f}-{max(ratios):.3f}   (switch if >= 0.95)"
        )


if __name__ == "__main__":
    main()
