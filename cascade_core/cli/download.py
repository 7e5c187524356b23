"""`download`: fetch what a variant needs into the Hugging Face cache, ahead of the first run; with `--extras`
also the networks only some modes need (extras.py), from the repositories they are released in."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import hub, memory
from ..devices import resolve_device, resolve_dtype
from ..options import EngineOptions
from ..released import EXTRA_FILES, IMAGE_ENCODER_FILES
from ..units import format_bytes

# Repositories that hold extra networks but no model (stabilityai/stable-cascade-prior: the image encoder).
EXTRAS_ONLY = {repo for repo, _ in EXTRA_FILES.values()} - {hub.REPO}


def add_parser(commands) -> None:
    p = commands.add_parser("download", help="fetch the model files into the Hugging Face cache",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    EngineOptions.add_arguments(p, only=("model", "variant", "weights", "revision", "device", "dtype", "offload"))
    p.add_argument("--force", action="store_true", help="fetch again even if cached (repairs a corrupt file)")
    p.add_argument("--extras", action="store_true", help="also fetch the extra networks of the picture modes "
                   f"({', '.join(EXTRA_FILES)}) from {' and '.join(sorted({r for r, _ in EXTRA_FILES.values()}))}; "
                   "with --model a folder or " + ", ".join(sorted(EXTRAS_ONLY)) + ": only those")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    options = EngineOptions.from_args(args)
    say = lambda message: print(message, file=sys.stderr)
    if args.extras and (options.model in EXTRAS_ONLY or not hub.is_repo_id(options.model)):
        what = "holds no model" if options.model in EXTRAS_ONLY else "is a folder, not a hub repository"
        say(f"{options.model} {what}: fetching the extra networks only")
    else:
        variant = options.variant
        if variant == "auto":  # what `generate` with these device, dtype and offload options would pick
            device = resolve_device(options.device)
            dtype = resolve_dtype(options.dtype, device)
            variant = memory.choose_variant(device, dtype, options.offload)
            print(f"variant {variant}: {memory.describe_choice(device, dtype, options.offload)}", file=sys.stderr)
        folder = hub.fetch(options.model, variant=variant, weights=options.weights, revision=options.revision,
                           force=args.force, progress=say)
        print(f"{folder} ({format_bytes(_size(folder))})")
    if args.extras:
        for name, path in fetch_extras(force=args.force, progress=say).items():
            print(f"{path} ({format_bytes(_size(path))}): {name}")
    return 0


def fetch_extras(*, force: bool = False, progress=None) -> dict[str, Path]:
    """Every extra network into the cache, one fetch per repository; name → its file or folder there."""
    by_repo: dict[str, list[str]] = {}
    for name, (repo, path) in EXTRA_FILES.items():
        files = [f"{path}/{f}" for f in IMAGE_ENCODER_FILES] if name == "image_encoder" else [path]
        by_repo.setdefault(repo, []).extend(files)
    folders = {repo: hub.fetch_files(repo, files, force=force, progress=progress) for repo, files in by_repo.items()}
    return {name: folders[repo] / path for name, (repo, path) in EXTRA_FILES.items()}


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
