"""Progress of a run: a fraction for the bar, a stage label and an estimate of the time left.

Stage B's steps cost several times Stage C's (bench/RESULTS.md: at 1024² a lite Stage B step is
about 3× a Stage C step on the CPU), so an estimate from Stage C's rate alone is far off. The
studio remembers the measured seconds per step of each stage per image size and batch
(`StepTimes`), and a run's estimate uses them: the current stage's own rate once it has run a
step, the remembered one before; a stage never measured at any size makes the estimate say so.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

from .words import STAGES

DECODE_FRACTION_OF_A_STEP = 0.5  # a Stage A decode costs 0.4–0.9 Stage B steps (bench/RESULTS.md)


class StepTimes:
    """Seconds per step of each stage, by image pixels × images, as last measured (shared by all sessions)."""

    def __init__(self):
        self._seconds: dict[tuple[str, int], float] = {}
        self._lock = threading.Lock()

    def record(self, stage: str, pixels: int, seconds_per_step: float) -> None:
        with self._lock:
            self._seconds[stage, pixels] = seconds_per_step

    def estimate(self, stage: str, pixels: int) -> float | None:
        """The measured rate at this size, else the nearest size's scaled by pixels (the cost grows about
        linearly with them), else None."""
        with self._lock:
            known = {p: s for (name, p), s in self._seconds.items() if name == stage}
        if pixels in known:
            return known[pixels]
        if not known:
            return None
        nearest = min(known, key=lambda p: abs(p - pixels))
        return known[nearest] * pixels / nearest


@dataclass(frozen=True)
class ProgressView:
    fraction: float  # of the whole run, 0–1
    stage: str  # the designer's word for the stage
    text: str  # "Composition · step 5/20 · 3.1 s · ~9 s left"


class RunProgress:
    """One run's progress from its StageProgress events; records each stage's rate into `times` when
    the stage ends. `stages`: the stages this run has (Stage C alone when exploring, Stage B alone
    when finishing) and their step counts."""

    def __init__(self, times: StepTimes, stages: dict[str, int], pixels: int):
        self.times, self.stages, self.pixels = times, dict(stages), pixels
        self.started: dict[str, float] = {}
        self.last_elapsed = 0.0

    def update(self, stage: str, step: int, total: int, elapsed: float) -> ProgressView:
        start = self.started.setdefault(stage, self.last_elapsed)
        self.last_elapsed = elapsed
        rate = (elapsed - start) / max(step, 1)
        if step == total:
            self.times.record(stage, self.pixels, rate)
        left = rate * (total - step)
        unknown = False
        names = list(self.stages)
        for later in names[names.index(stage) + 1:] if stage in names else ():
            later_rate = self.times.estimate(later, self.pixels)
            if later_rate is None:
                unknown = True
            else:
                left += later_rate * (self.stages[later] + (DECODE_FRACTION_OF_A_STEP if later == "stage_b" else 0))
        fraction = elapsed / (elapsed + left) if elapsed + left > 0 else 0.0
        if unknown:  # a later stage never measured: the fraction counts steps instead
            done = sum(self.stages[n] for n in names[:names.index(stage)]) + step
            fraction = done / max(sum(self.stages.values()), 1)
        name = STAGES.get(stage, stage)
        estimate = "estimating the time left" if unknown else f"~{left:.0f} s left"
        text = f"{name} · step {step}/{total} · {elapsed:.1f} s · {estimate}"
        return ProgressView(min(fraction, 1.0), name, text)
