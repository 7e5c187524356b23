"""A request as the studio runs it, with Stage B intermediates every 2 steps against the studio's
policy now (`ui.generation.decode_every`: one view, halfway), in turns in one process.

    python bench/stage_b_views.py [--variant lite] [--size 256] [--device auto] [--dtype float32] [--pairs 3]
                                  [--images 1] [--prior-steps 20] [--decoder-steps 10] [--tokenizer DIR]

Each intermediate is a whole Stage A decode of the current estimate. Prints each policy's request
time and how many intermediates it decoded, and one Stage A decode timed alone, so that the
difference can be checked against (decodes saved) × (one decode).
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench import measure  # noqa: E402
from bench.request import PROMPT, TOKENIZER, random_model  # noqa: E402
from cascade_core import GenerationRequest, generate  # noqa: E402
from cascade_core.devices import resolve_device  # noqa: E402
from cascade_core.events import StageProgress  # noqa: E402
from cascade_core.pipeline import latent_shapes  # noqa: E402
from ui.generation import Services, decode_every  # noqa: E402

OLD_EVERY = 2  # the studio's Stage B setting before the view policy


def run(model, request: GenerationRequest, every: int, decoded: list) -> None:
    """One request with the studio's Stage C previews and Stage B intermediates every `every` steps."""
    shown = 0
    for event in generate(model, request, preview_every=Services.preview_every, decode_every=every):
        shown += isinstance(event, StageProgress) and event.stage == "stage_b" and len(event.previews) > 0
    decoded.append(shown)


@torch.inference_mode()
def decode_seconds(model, request: GenerationRequest, repeats: int = 3) -> float:
    """Seconds of one Stage A decode of the request's latent alone, median of `repeats` after a warm-up."""
    _, shape_b = latent_shapes(request.width, request.height)
    latent = torch.randn(request.num_images, *shape_b, device=model.device, dtype=model.dtype)
    model.stage_a.decode(latent)
    decode = lambda: model.stage_a.decode(latent)
    return statistics.median(measure.timed(decode, model.device)[0] for _ in range(repeats))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="lite")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--images", type=int, default=1)
    parser.add_argument("--prior-steps", type=int, default=20)
    parser.add_argument("--decoder-steps", type=int, default=10)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (ignored on a GPU)")
    parser.add_argument("--tokenizer", default=str(TOKENIZER), help="a CLIP tokenizer folder")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    model = random_model(args.variant, getattr(torch, args.dtype), device, args.tokenizer)
    request = GenerationRequest(PROMPT, seed=0, width=args.size, height=args.size, num_images=args.images,
                                prior_steps=args.prior_steps, decoder_steps=args.decoder_steps)
    policies = {f"every {OLD_EVERY} steps": OLD_EVERY, "one view (studio)": decode_every(args.decoder_steps, 1)}
    decoded = {name: [] for name in policies}
    calls = {name: (lambda every=every, out=decoded[name]: run(model, request, every, out))
             for name, every in policies.items()}
    times = measure.interleaved(calls, device, args.pairs, warmup=1)
    print(f"{args.variant} {args.size}x{args.size}, {args.images} image(s), {args.prior_steps}+{args.decoder_steps} "
          f"steps, {args.dtype} on {device}; {args.pairs} pairs after one warm-up each")
    for name, t in times.items():
        print(f"{name:20} decoded {decoded[name][-1]} intermediates; request median {t['median_s']:.3f} s "
              f"(runs {', '.join(f'{s:.3f}' for s in t['runs_s'])})")
    old, new = policies
    ratio = measure.speedups(times, ours=old, theirs=new)  # new / old
    print(f"one view / every {OLD_EVERY}: {ratio['wall']:.3f} (paired median {ratio['paired_wall']:.3f})")
    print(f"alone: Stage A decode {decode_seconds(model, request):.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
