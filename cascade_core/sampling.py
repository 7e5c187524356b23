"""The official Stable Cascade sampler (Stability AI's `gdf/`): cosine schedule with shift,
epsilon prediction, classifier-free guidance with std rescaling, DDPM steps (eta 1).

Small pure functions over (denoiser, schedule, noise). The schedule is computed in fp32
whatever the network dtype; the loop itself never reads a value back to the host.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x, r) → predicted noise

COSINE_S = 0.008
CFG_RHO = 0.7


def _cosine_min_var() -> tuple[torch.Tensor, torch.Tensor]:
    """The cosine schedule's offset s and its variance at t = 0, cos(s/(1+s)·π/2)²."""
    s = torch.tensor(COSINE_S)
    return s, torch.cos(s / (1 + s) * torch.pi * 0.5) ** 2


def _cosine_log_snr(t: torch.Tensor) -> torch.Tensor:
    """logSNR(t) of the cosine schedule (Nichol & Dhariwal 2021), variance clamped to [1e-4, 0.9999]."""
    s, min_var = _cosine_min_var()
    var = (torch.cos((t + s) / (1 + s) * torch.pi * 0.5) ** 2 / min_var).clamp(1e-4, 0.9999)
    return (var / (1 - var)).log()


def _noise_level(log_snr: torch.Tensor) -> torch.Tensor:
    """The network's `r` input: the unshifted cosine time with this logSNR (gdf CosineTNoiseCond)."""
    s, min_var = _cosine_min_var()
    var = log_snr.sigmoid().clamp(0, 1)
    return ((var * min_var) ** 0.5).acos() / (torch.pi * 0.5) * (1 + s) - s


@dataclass(frozen=True)
class Schedule:
    """fp32 tensors of length steps + 1 along t = linspace(t_start, 0, steps + 1)."""
    log_snr: torch.Tensor
    a: torch.Tensor  # signal scale sqrt(sigmoid(logSNR))
    b: torch.Tensor  # noise scale sqrt(sigmoid(-logSNR))
    r: torch.Tensor  # network noise-level input

    @property
    def steps(self) -> int:
        return len(self.log_snr) - 1


def shifted_log_snr(t: torch.Tensor, shift: float = 1.0) -> torch.Tensor:
    """logSNR(t) + 2·log(1/shift), clamped to the unshifted range [logSNR(1), logSNR(0)] (gdf)."""
    lo, hi = _cosine_log_snr(torch.tensor([1.0, 0.0]))
    return (_cosine_log_snr(t) + 2 * math.log(1 / shift)).clamp(lo, hi)


def cosine_schedule(steps: int, shift: float = 1.0, t_start: float = 1.0) -> Schedule:
    """The shifted cosine schedule on t = linspace(t_start, 0, steps + 1) (t_start < 1: image-to-image)."""
    log_snr = shifted_log_snr(torch.linspace(t_start, 0.0, steps + 1, dtype=torch.float32), shift)
    return Schedule(
        log_snr=log_snr, a=log_snr.sigmoid().sqrt(), b=(-log_snr).sigmoid().sqrt(), r=_noise_level(log_snr)
    )


def noised(x0: torch.Tensor, eps: torch.Tensor, t: float) -> torch.Tensor:
    """The forward process at time t with shift 1: a·x0 + b·eps (gdf `diffuse`).

    The official image-to-image noises its start so, then samples it as the shift-2 level of t
    (../shared/reference README, extras/img2img): this keeps that mismatch, as the released
    weights were shipped with it.
    """
    log_snr = shifted_log_snr(torch.tensor([t], dtype=torch.float32))
    return log_snr.sigmoid().sqrt() * x0 + (-log_snr).sigmoid().sqrt() * eps


def draw_noise(generators: Sequence[torch.Generator], shape: Sequence[int]) -> torch.Tensor:
    """(B, *shape) standard normal: sample k is one `randn(1, *shape)` from generators[k].

    Called once for the start and once per step, with one generator this is exactly the
    official stream, and the noise of only one step exists at a time.
    """
    return torch.cat([torch.randn(1, *shape, generator=g) for g in generators])


def guidance_rescale(p_cond: torch.Tensor, p_uncond: torch.Tensor, guidance: float, rho: float = CFG_RHO):
    """Classifier-free guidance, then rescale its std to the conditional one's (gdf, cfg_rho).

    The std is taken per sample, so a batch equals its images run one at a time.
    """
    p = torch.lerp(p_uncond, p_cond, guidance)
    std = lambda t: t.flatten(1).std(dim=1).view(-1, *[1] * (t.dim() - 1))  # (B, 1, 1, 1)
    return rho * (p * std(p_cond) / (std(p) + 1e-9)) + p * (1 - rho)


class Guided:
    """A denoiser from a network and its two conditionings; guidance ≤ 1 runs only the conditional one.

    `net.prepare(**conditions)` runs here, once per request (conditional and unconditional
    batched, conditional first, see `_batched`); each step is one `net.step(x, r, prepared)` on the
    rows `inputs(x, r)`, whose output `output` turns into the prediction. `guided_together` runs the
    steps of several such denoisers of one network as one call.
    """

    def __init__(self, net, cond: dict, uncond: dict, guidance: float):
        self.net, self.guidance = net, guidance
        self.both = guidance > 1  # the unconditional branch runs too
        self.prepared = net.prepare(**({k: _batched(cond[k], uncond[k]) for k in cond} if self.both else cond))

    def inputs(self, x: torch.Tensor, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The network's rows for x (B, …) at levels r (B,): (2B, …) conditional first, or x itself."""
        return (torch.cat([x, x]), torch.cat([r, r])) if self.both else (x, r)

    def output(self, out: torch.Tensor) -> torch.Tensor:
        """The predicted noise (B, …) from the network's output on `inputs`' rows."""
        if not self.both:
            return out
        p_cond, p_uncond = out.chunk(2)
        return guidance_rescale(p_cond, p_uncond, self.guidance)

    def __call__(self, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return self.output(self.net.step(*self.inputs(x, r), self.prepared))


def guided(net, cond: dict, uncond: dict, guidance: float) -> Guided:
    """The guided denoiser of `net` for one request (see `Guided`)."""
    return Guided(net, cond, uncond, guidance)


def guided_together(calls: Sequence[tuple[Guided, torch.Tensor, torch.Tensor]], prepared) -> list[torch.Tensor]:
    """Each (denoiser, x, r)'s prediction from one network call: the calls' rows concatenated in order,
    with `prepared` their denoisers' prepared conditionings joined in the same order
    (prepared.join). Each keeps its own guidance: its rows are split off and guided alone."""
    rows = [denoiser.inputs(x, r) for denoiser, x, r in calls]
    out = calls[0][0].net.step(torch.cat([x for x, _ in rows]), torch.cat([r for _, r in rows]), prepared)
    parts = out.split([len(x) for x, _ in rows])
    return [denoiser.output(part) for (denoiser, _, _), part in zip(calls, parts)]


def _batched(cond, uncond):
    """A condition of both branches as one batch, conditional first: tensors concatenated, lists of
    optional tensors (a ControlNet's outputs) entry by entry, None staying None."""
    if cond is None:
        return None
    if isinstance(cond, torch.Tensor):
        return torch.cat([cond, uncond])
    return tuple(_batched(c, u) for c, u in zip(cond, uncond, strict=True))


def ddpm_step(x: torch.Tensor, pred: torch.Tensor, schedule: Schedule, i: int,
              noise: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Step i of the DDPM sampler (gdf DDPMSampler, eta 1): from x and the predicted noise `pred`, the
    estimate x0 and the next x; `noise()` gives the step's fresh noise (shaped like x, on x's device)."""
    a, b = schedule.a, schedule.b
    x0 = (x - b[i] * pred) / a[i]  # the network predicts the noise (epsilon target)
    sigma = (b[i + 1] ** 2 / b[i] ** 2).sqrt() * (1 - a[i] ** 2 / a[i + 1] ** 2).sqrt()
    x = a[i + 1] * x0 + (b[i + 1] ** 2 - sigma**2).sqrt() * pred + sigma * noise()
    return x, x0


def ddpm_sample(denoise: Denoiser, x: torch.Tensor, schedule: Schedule,
                noise: Callable[[], torch.Tensor]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Run the DDPM sampler from the start `x`; yields (x, x0) after each step.

    `noise()` gives the fresh noise of the next step (shaped like x, on x's device), called once per step.
    """
    batch = x.shape[0]
    r = schedule.r.to(x.device)
    for i in range(schedule.steps):
        x, x0 = ddpm_step(x, denoise(x, r[i].expand(batch)), schedule, i, noise)
        yield x, x0
