"""The one-line progress text: stage, step, elapsed and an estimate of the time left."""
from __future__ import annotations

STAGE_NAMES = {"stage_c": "Stage C (prior)", "stage_b": "Stage B (decoder)"}


class ProgressText:
    """Turns StageProgress events into text; per-step rates give the estimate of time left."""

    def __init__(self, decoder_steps: int):
        self.decoder_steps = decoder_steps
        self.stage_start: dict[str, float] = {}
        self.last_elapsed = 0.0

    def line(self, stage: str, step: int, total: int, elapsed: float) -> str:
        start = self.stage_start.setdefault(stage, self.last_elapsed)
        self.last_elapsed = elapsed
        rate = (elapsed - start) / max(step, 1)
        left = rate * (total - step)
        if stage == "stage_c":
            left += rate * self.decoder_steps  # rough: Stage B has not run yet
        name = STAGE_NAMES.get(stage, stage)
        return f"{name} · step {step}/{total} · {elapsed:.1f} s elapsed · ~{left:.0f} s left"
