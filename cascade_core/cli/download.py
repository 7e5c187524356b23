"""`download`: fetch what a variant needs into the Hugging Face cache, ahead of the first run."""
from __future__ import annotations

import argparse
import sys

from .. import hub, memory
from ..devices import resolve_device, resolve_dtype
from ..options import EngineOptions
from ..units import format_bytes


def add_parser(commands) -> None:
    p = commands.add_parser("download", help="fetch the model files into the Hugging Face cache",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    EngineOptions.add_arguments(p, only=("model", "variant", "weights", "revision", "device", "dtype", "offload"))
    p.add_argument("--force", action="store_true", help="fetch again even if cached (repairs a corrupt file)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    options = EngineOptions.from_args(args)
    variant = options.variant
    if variant == "auto":  # what `generate` with these device, dtype and offload options would pick
        device = resolve_device(options.device)
        dtype = resolve_dtype(options.dtype, device)
        variant = memory.choose_variant(device, dtype, options.offload)
        print(f"variant {variant}: {memory.describe_choice(device, dtype, options.offload)}", file=sys.stderr)
    say = lambda message: print(message, file=sys.stderr)
    folder = hub.fetch(options.model, variant=variant, weights=options.weights, revision=options.revision,
                       force=args.force, progress=say)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    print(f"{folder} ({format_bytes(size)})")
    return 0
