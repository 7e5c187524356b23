"""N simultaneous one-image requests, served one at a time and batched (cascade_core/batching.py).

All N requests (different prompts and seeds, one size) are started at the same instant. "One at a
time" is a Batcher that admits one request at a time, in order: what the studio did before batching
(its queue runs one generation at a time). "Batched" admits all N, so their same-stage steps are one
network call. For each: the whole time, throughput (images per minute), each request's latency
(start → its Finished) and time to its first image (the Stage C preview), peak memory; and how far
each batched image is from the same request's one-at-a-time image. On a shared CPU the process's CPU time
(`cpu_s`, all threads) moves less with other load than the wall time.

Random weights of the real architectures (the time is the same as with released ones).
Run: python -m bench.batching [--device cpu --variant lite --size 256 --prior-steps 3 --decoder-steps 2]
GPU: python -m bench.batching --device cuda --variant full --size 1024 --dtype bfloat16 --prior-steps 20
     --decoder-steps 10 [--cuda-graphs]
"""
from __future__ import annotations

import argparse
import datetime
import json
import statistics
import threading
import time

import torch

import cascade_core as cc
from cascade_core import cuda_graphs
from cascade_core.batching import Batcher
from cascade_core.devices import DTYPES, resolve_device, synchronize

from . import measure
from .request import TOKENIZER, random_model

PROMPTS = ("a red fox in the snow", "a lighthouse at night", "a bowl of ramen, studio photo", "an old tram in Lisbon",
           "a watercolor of a heron", "a city street in the rain", "a mountain lake at dawn", "a cat asleep on books")


def requests(n: int, size: int, prior_steps: int, decoder_steps: int) -> list[cc.GenerationRequest]:
    return [cc.GenerationRequest(PROMPTS[k % len(PROMPTS)], seed=1000 + k, width=size, height=size,
                                 prior_steps=prior_steps, decoder_steps=decoder_steps) for k in range(n)]


def serve(model, batch: list[cc.GenerationRequest], max_requests: int) -> dict:
    """Start every request at once through a Batcher admitting `max_requests`; their times and images."""
    model.text_encoder.forget()  # each mode encodes every prompt, as new requests would
    batcher = Batcher(max_requests)
    seen = [{} for _ in batch]
    measure.reset_peak_memory(model.device)
    synchronize(model.device)
    with batcher.held():
        start, cpu = time.perf_counter(), time.process_time()
        streams = [batcher.events(model, r, preview_every=0, decode_every=0, keep_tensors=True) for r in batch]

    def read(k):
        for event in streams[k]:
            now = time.perf_counter() - start
            if isinstance(event, cc.StageDone) and event.stage == "stage_c":
                seen[k]["first_image_s"] = now
            if isinstance(event, cc.Finished):
                seen[k].update(latency_s=now, image=event.tensors["image"], latent_b=event.tensors["latent_b"])

    threads = [threading.Thread(target=read, args=(k,)) for k in range(len(batch))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total, cpu = time.perf_counter() - start, time.process_time() - cpu
    batcher.close()
    latencies = [s["latency_s"] for s in seen]
    return {"total_s": total, "cpu_s": cpu, "images_per_minute": 60 * len(batch) / total, "latency_s": latencies,
            "median_latency_s": statistics.median(latencies), "max_latency_s": max(latencies),
            "first_image_s": [s["first_image_s"] for s in seen],
            "peak_memory_bytes": measure.peak_memory_bytes(model.device),
            "calls": [list(c) for c in batcher.calls], "tensors": [(s["image"], s["latent_b"]) for s in seen]}


def differences(alone: list, together: list) -> dict:
    """Largest difference of a batched image (pixels in [0, 1]) and Stage B latent (relative) from its alone run."""
    image = max((a[0] - b[0]).abs().max().item() for a, b in zip(alone, together))
    latent = max(((a[1].double() - b[1].double()).norm() / a[1].double().norm()).item() for a, b in zip(alone, together))
    return {"image_max_abs": image, "latent_b_max_relative": latent}


def compare(model, n: int, size: int, prior_steps: int, decoder_steps: int, warm_batch: bool = True) -> dict:
    """One at a time, then batched, after an untimed request alone and (warm_batch) an untimed batched run:
    kernels, allocator, the CUDA graphs of both batch sizes."""
    batch = requests(n, size, prior_steps, decoder_steps)
    serve(model, batch[:1], 1)
    if warm_batch:
        serve(model, batch, n)
    result = {"one_at_a_time": serve(model, batch, 1), "batched": serve(model, batch, n)}
    result["difference"] = differences(result["one_at_a_time"].pop("tensors"), result["batched"].pop("tensors"))
    result["throughput_ratio"] = result["batched"]["images_per_minute"] / result["one_at_a_time"]["images_per_minute"]
    return result


def report(result: dict) -> None:
    for mode in ("one_at_a_time", "batched"):
        r = result[mode]
        print(f"{mode:14} total {r['total_s']:7.2f} s (process CPU {r['cpu_s']:.1f} s)  {r['images_per_minute']:6.1f} images/min  latency median "
              f"{r['median_latency_s']:.2f} s, max {r['max_latency_s']:.2f} s; first image median "
              f"{statistics.median(r['first_image_s']):.2f} s; each: "
              + " ".join(f"{s:.2f}" for s in r["latency_s"]))
    d = result["difference"]
    print(f"throughput batched / one at a time: {result['throughput_ratio']:.2f}x; batched vs alone: image max "
          f"{d['image_max_abs']:.2e}, Stage B latent relative {d['latent_b_max_relative']:.2e}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.batching", description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--variant", default="lite", help="full, lite or tiny (random weights of that architecture)")
    p.add_argument("--dtype", default="float32", choices=list(DTYPES))
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--requests", type=int, default=8)
    p.add_argument("--prior-steps", type=int, default=3)
    p.add_argument("--decoder-steps", type=int, default=2)
    p.add_argument("--threads", type=int, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--cuda-graphs", action="store_true", help="replay the steps from CUDA graphs (cuda_graphs.py)")
    p.add_argument("--tokenizer", default=str(TOKENIZER))
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    model = random_model(args.variant, DTYPES[args.dtype], device, args.tokenizer)
    if args.cuda_graphs:
        for net in (model.stage_c, model.stage_b):
            cuda_graphs.enable(net)
    result = {"what": "batching", "args": vars(args), "torch": torch.__version__,
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
              "threads": torch.get_num_threads(), **compare(model, args.requests, args.size, args.prior_steps,
                                                           args.decoder_steps, warm_batch=device.type == "cuda")}
    report(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
