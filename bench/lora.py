"""LoRA on Stage C, on the CPU: weights merged once against the low-rank products added at every step.

    python bench/lora.py [--width 1536] [--blocks 1 3] [--size 1024] [--rank 4] [--repeats 5] [--threads 2]

Builds a Stage C of lite's width (1536, 24 heads) with fewer blocks (default 8 attention blocks; lite has
32, full 64), random float32 weights, `runtime.apply` as loading does (oneDNN products), and a random
official-layout LoRA on every attention projection. Times one guided Stage C step (batch 2) of a `--size`²
image three ways, in turns: the base weights; the LoRA merged (`Loras.use`); the LoRA added on the fly
(`scale · (x·downᵀ)·upᵀ` beside each attention projection: a forward hook on out_proj, and in the in_proj
products of the step and of the text keys and values made once per request), checked to give the merged
outputs. Then the one-time costs: merging the LoRA, putting the base weights back, and the host memory the
kept base weights take.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import CLIPTextModelWithProjection, CLIPTokenizer  # noqa: E402

from bench import measure  # noqa: E402
from bench.request import TOKENIZER  # noqa: E402
from cascade_core import runtime  # noqa: E402
from cascade_core.config import StageCConfig  # noqa: E402
from cascade_core.demo import randomize_  # noqa: E402
from cascade_core.lora import Loras  # noqa: E402
from cascade_core.lora_files import official_targets  # noqa: E402
from cascade_core.models import build  # noqa: E402
from cascade_core.models.blocks import MultiheadAttention  # noqa: E402
from cascade_core.pipeline import STAGE_C_COMPRESSION  # noqa: E402
from cascade_core.text import TextEncoder  # noqa: E402
from cascade_core.units import format_bytes  # noqa: E402

CPU = torch.device("cpu")


def stage_c(width: int, blocks: tuple[int, int]) -> torch.nn.Module:
    """A Stage C of `width` with blocks (down level 0, down level 1), mirrored on the way up; random weights."""
    config = StageCConfig(c_cond=width, c_hidden=(width, width), nhead=(width // 64, width // 64),
                          blocks=(blocks, blocks[::-1]))
    with torch.device("meta"):
        net = build(config)
    return randomize_(net.to_empty(device=CPU), torch.Generator().manual_seed(0)).requires_grad_(False).eval()


def random_lora(net: torch.nn.Module, rank: int, path: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """An official-layout file with a LoRA on each of `net`'s attention projections; target → (down, up)."""
    generator, tensors, updates = torch.Generator().manual_seed(1), {}, {}
    for n, target in enumerate(official_targets(net)):
        out, inp = net.get_parameter(target).shape
        down = torch.randn(rank, inp, generator=generator) / inp**0.5
        up = torch.randn(out, rank, generator=generator) * 0.01
        tensors.update({f"weights.{n}.lora_down": down, f"weights.{n}.lora_up": up})
        updates[target] = (down, up)
    save_file(tensors, str(path))
    return updates


def add_on_the_fly(net: torch.nn.Module, updates: dict, scale: float) -> None:
    """Each attention's per-step products also add `scale · (x·downᵀ)·upᵀ` (the weights stay the base ones)."""
    low_rank = lambda x, down, up: F.linear(F.linear(x, down), up) * scale
    for name, module in net.named_modules():
        if not isinstance(module, MultiheadAttention):
            continue
        module.out_proj.register_forward_hook(
            lambda m, args, out, du=updates[f"{name}.out_proj.weight"]: out + low_rank(args[0], *du))
        down, up = updates[f"{name}.in_proj_weight"]

        class OnTheFly(type(module)):  # the oneDNN twin runtime.apply swapped in, plus the LoRA
            def project(self, x, weight, bias, down=down, up=up):
                return super().project(x, weight, bias) + low_rank(x, down, up[:weight.shape[0]])

            def text_kv(self, context, down=down, up=up):
                k, v = super().text_kv(context)
                extra_k, extra_v = low_rank(context, down, up[self.out_proj.in_features:]).chunk(2, dim=-1)
                return k + extra_k, v + extra_v

        module.__class__ = OnTheFly


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1536)
    parser.add_argument("--blocks", type=int, nargs=2, default=(1, 3), help="blocks of down levels 0 and 1")
    parser.add_argument("--size", type=int, default=1024, help="image side; the latent is size/42.67")
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    side = math.ceil(args.size / STAGE_C_COMPRESSION)

    nets = {kind: stage_c(args.width, tuple(args.blocks)) for kind in ("base", "merged", "on the fly")}
    for net in nets.values():
        runtime.apply({"stage_c": net}, CPU)
    attention = len(official_targets(nets["base"])) // 2
    text_encoder = TextEncoder(CLIPTokenizer.from_pretrained(TOKENIZER),  # the tiny one: the LoRA has no token
                               CLIPTextModelWithProjection.from_pretrained(TOKENIZER.parent / "text_encoder"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "random.safetensors"
        updates = random_lora(nets["base"], args.rank, path)
        loras, merges, restores = Loras(tmp), [], []
        for _ in range(3):
            merges.append(measure.timed(lambda: loras.use(((str(path), 1.0),), nets["merged"], text_encoder), CPU)[0])
            kept = sum(t.nelement() * t.element_size() for t in loras._originals.values())
            restores.append(measure.timed(lambda: loras.use((), nets["merged"], text_encoder), CPU)[0])
        loras.use(((str(path), 1.0),), nets["merged"], text_encoder)
    merge_s, restore_s = statistics.median(merges), statistics.median(restores)
    add_on_the_fly(nets["on the fly"], updates, 1.0 / args.rank)

    generator = torch.Generator().manual_seed(2)
    config = nets["base"].config
    x = torch.randn(2, 16, side, side, generator=generator)
    r = torch.rand(2, generator=generator)
    cond = dict(clip_text=torch.randn(2, 77, config.c_clip_text, generator=generator),
                clip_text_pooled=torch.randn(2, 1, config.c_clip_text_pooled, generator=generator),
                clip_img=torch.zeros(2, 1, config.c_clip_img))
    with torch.inference_mode():
        prepared = {kind: net.prepare(**cond) for kind, net in nets.items()}
        outputs = {kind: net.step(x, r, prepared[kind]) for kind, net in nets.items()}
        calls = {kind: (lambda net=net, p=prepared[kind]: net.step(x, r, p)) for kind, net in nets.items()}
        runs = measure.interleaved(calls, CPU, args.repeats)
    rel = lambda a, b: ((a - b).norm() / b.norm()).item()
    print(f"Stage C width {args.width}, blocks {args.blocks}: {attention} attention blocks; latent {side}×{side}, "
          f"batch 2, rank {args.rank}, {args.threads} thread(s), median of {args.repeats}")
    for kind, run in runs.items():
        paired = measure.speedups(runs, ours="base", theirs=kind)  # kind / base, run by run
        print(f"  step, {kind:>10}: median {run['median_s'] * 1e3:7.1f} ms, min {run['min_s'] * 1e3:7.1f} ms, cpu "
              f"{run['cpu_median_s'] * 1e3:7.1f} ms; against base: paired wall {paired['paired_wall'] - 1:+.1%}, "
              f"cpu {paired['cpu'] - 1:+.1%}")
    difference = rel(outputs["merged"], outputs["on the fly"])
    print(f"  merged vs on the fly outputs: relative difference {difference:.1e}")
    per_block = lambda seconds: f"{seconds * 1e3:.0f} ms ({seconds / attention * 1e3:.1f} ms per attention block)"
    print(f"  merge (median of 3; first {merges[0] * 1e3:.0f} ms): {per_block(merge_s)}; restore: "
          f"{per_block(restore_s)}; base weights kept while merged: {format_bytes(kept)} "
          f"({format_bytes(kept // attention)} per attention block)")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: v if not isinstance(v, Path) else str(v) for k, v in
                                                  vars(args).items()}, "attention_blocks": attention,
                                         "runs": runs, "merge_s": merges, "restore_s": restores, "difference": difference,
                                         "kept_bytes": kept}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
