"""The command line: one module per command, each with `add_parser(subparsers)` and `run(args)`."""
from __future__ import annotations

import argparse
import sys

from ..loading import ModelLoadError
from ..options import OptionsError
from ..request import RequestError
from . import check, download, generate

COMMANDS = (generate, download, check)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cascade_core", description="Stable Cascade from the command line.")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(commands)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (RequestError, ModelLoadError, OptionsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
