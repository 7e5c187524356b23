"""`check`: validate a model folder, or the cached copy of a hub repository, and print a table."""
from __future__ import annotations

import argparse
from pathlib import Path

from .. import hub
from ..check import check_folder
from ..options import EngineOptions
from ..units import format_bytes


def add_parser(commands) -> None:
    p = commands.add_parser("check", help="validate a model folder or a cached hub repository, without loading it",
                            description="Validate a model folder, a model file or a cached hub repository without "
                            "loading it, in whichever layout its files are (released, diffusers, ComfyUI, single "
                            "files): each row says the format found and what will be loaded. The extra networks of "
                            "the picture modes are optional: each one present is checked, an absent one is fetched "
                            "when a mode needs it.")
    p.add_argument("model", nargs="?", default=hub.REPO, help="a folder or .safetensors file, or a hub repository id "
                   f"whose cached copy is checked (default {hub.REPO})")
    EngineOptions.add_arguments(p, only=("revision", "stage_c", "stage_b"))
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if hub.is_repo_id(args.model):
        folder = hub.cache_snapshot(args.model, args.revision)
        if folder is None:
            print(f"{args.model} is not in the Hugging Face cache; fetch it with "
                  f"`python -m cascade_core download --model {args.model}`")
            return 1
    else:
        folder = Path(args.model).expanduser()
    rows = check_folder(folder, args.stage_c, args.stage_b)
    formats = list(dict.fromkeys(r.format.split(" (")[0] for r in rows if r.format))  # details in the rows
    print(f"{folder}\nformats: {'; '.join(formats) or 'none recognised'}\n")
    print(table([("file", "part", "size", "result")] +
                [(r.file, r.part, format_bytes(r.bytes) if r.bytes else "", _result(r)) for r in rows]))
    checked = [r for r in rows if not r.absent]  # an absent extra network is optional: not a check
    bad = [r for r in checked if not r.ok]
    print(f"\n{len(checked) - len(bad)} of {len(checked)} checks passed" + ("" if not bad else
          "; fix or fetch again what failed (for the hub: `python -m cascade_core download --force`, "
          "with --extras for the extra networks)"))
    return 1 if bad else 0


def _result(row) -> str:
    if row.absent:
        return row.detail
    return ("ok: " if row.ok else "FAIL: ") + row.detail


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[-1]]) for row in rows)
