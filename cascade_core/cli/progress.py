"""A one-line progress bar per stage on the terminal (stderr)."""
from __future__ import annotations

import sys

LABELS = {"stage_c": "Stage C", "stage_b": "Stage B"}


class StageBar:
    def __init__(self, stream=sys.stderr, width: int = 30):
        self.stream, self.width = stream, width

    def update(self, stage: str, step: int, total: int, elapsed: float) -> None:
        filled = self.width * step // total
        bar = "█" * filled + "·" * (self.width - filled)
        self.stream.write(f"\r{LABELS.get(stage, stage):8} {bar} {step:>3}/{total} {elapsed:6.1f} s")
        if step == total:
            self.stream.write("\n")
        self.stream.flush()
