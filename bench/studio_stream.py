"""What the studio's stream adds to a run: /generate's time from submit to its last output, less
the engine's own time for that run; for this checkout and, optionally, a baseline checkout, in turns.

    python bench/studio_stream.py [--baseline DIR] [--size 1024] [--prior-steps 20] [--decoder-steps 10]
                                  [--images 1] [--runs 3]

Each checkout serves `app.py --demo` (the tiny model: its engine is fast, as the real one is on a GPU,
so what the stream costs shows) on a free port, and the runs alternate between them. The client
does not fetch the streamed files, so the time is the server's. Overhead = wall − the engine's
seconds (the "seconds" in each saved image's settings). A baseline is a checkout of older code beside this
one, e.g. `git worktree add ../old <commit>` (it needs ../shared beside it, as this checkout does).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from gradio_client import Client

HERE = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 180


def serve(checkout: Path, outputs: str) -> tuple[subprocess.Popen, str]:
    """`app.py --demo` of a checkout on a free port: (process, url) once it answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([sys.executable, "app.py", "--demo", "--port", str(port), "--outputs", outputs],
                               cwd=checkout, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    url, deadline = f"http://127.0.0.1:{port}/", time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url + "config", timeout=2):
                return process, url
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"{checkout}/app.py exited or did not serve within {START_TIMEOUT_S} s")


def one_run(client: Client, args) -> dict:
    """Wall seconds of one /generate call, the engine's seconds, and how many outputs it streamed."""
    start = time.perf_counter()
    job = client.submit("a lighthouse at dusk", "", args.size, args.size, 1234, args.prior_steps, 4.0,
                        args.decoder_steps, 1.1, args.images, api_name="/generate")
    final = job.result(timeout=600)
    wall = time.perf_counter() - start
    saved = Path(final[3]["images"][0]["file"]).with_suffix(".json")  # the image's sidecar has the engine's time
    engine = json.loads(saved.read_text())["seconds"]
    return {"wall": wall, "engine": engine, "overhead": wall - engine, "outputs": len(job.outputs())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="a checkout of the code to compare with")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--images", type=int, default=1)
    parser.add_argument("--prior-steps", type=int, default=20)
    parser.add_argument("--decoder-steps", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each checkout, after one warm-up")
    args = parser.parse_args(argv)
    checkouts = {"this checkout": HERE} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    processes, clients, results = [], {}, {name: [] for name in checkouts}
    try:
        for name, checkout in checkouts.items():
            process, url = serve(checkout, tempfile.mkdtemp(prefix="studio-stream-"))
            processes.append(process)
            clients[name] = Client(url, verbose=False, download_files=False)
            one_run(clients[name], args)  # warm-up: the model is loaded and the code paths are hot
        for _ in range(args.runs):
            for name, client in clients.items():
                results[name].append(one_run(client, args))
    finally:
        for process in processes:
            process.terminate()
    print(f"tiny demo model, {args.size}x{args.size}, {args.images} image(s), {args.prior_steps}+{args.decoder_steps} "
          f"steps; {args.runs} runs each after a warm-up, in turns")
    for name, runs in results.items():
        median = {key: statistics.median(r[key] for r in runs) for key in ("wall", "engine", "overhead")}
        each = ", ".join(f"{r['overhead']:.3f}" for r in runs)
        print(f"{name:14} wall {median['wall']:.3f} s, engine {median['engine']:.3f} s, stream overhead "
              f"{median['overhead']:.3f} s (runs {each}); "
              f"{runs[-1]['outputs']} outputs streamed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
