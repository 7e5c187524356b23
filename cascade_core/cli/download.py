"""`download`: fetch what a variant needs into the Hugging Face cache, ahead of the first run."""
from __future__ import annotations

import argparse
import sys

from .. import hub, memory
from ..devices import resolve_device, resolve_dtype
from ..units import format_bytes


def add_parser(commands) -> None:
    p = commands.add_parser("download", help="fetch the model files into the Hugging Face cache",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default=hub.REPO, help="hub repository id")
    p.add_argument("--variant", default="auto", choices=["auto", "full", "lite"],
                   help="auto: full when it fits this machine's free device memory, else lite")
    p.add_argument("--weights", default="bf16", choices=list(hub.WEIGHTS), help="which released files")
    p.add_argument("--revision", default="main", help="hub branch, tag or commit")
    p.add_argument("--force", action="store_true", help="fetch again even if cached (repairs a corrupt file)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    variant = args.variant
    if variant == "auto":
        device = resolve_device("auto")
        dtype = resolve_dtype("auto", device)
        variant = memory.choose_variant(device, dtype)
        print(f"variant {variant}: {memory.describe_choice(device, dtype)}", file=sys.stderr)
    say = lambda message: print(message, file=sys.stderr)
    folder = hub.fetch(args.model, variant=variant, weights=args.weights, revision=args.revision,
                       force=args.force, progress=say)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    print(f"{folder} ({format_bytes(size)})")
    return 0
