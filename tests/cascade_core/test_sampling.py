"""The sampler reproduces the official trajectories step by step (../shared/reference/sampling)."""
import json
from functools import partial
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from cascade_core import sampling
from cascade_core.config import StageBConfig, StageCConfig
from cascade_core.models import build
from tests.conftest import REFERENCE, relative_error

SAMPLING = REFERENCE / "sampling"
CONFIGS = {"stage_c": StageCConfig, "stage_b": StageBConfig}


@pytest.mark.parametrize("name", ["stage_c", "stage_b"])
@torch.inference_mode()
def test_trajectory_matches_reference(name):
    settings = json.loads((SAMPLING / "settings.json").read_text())[name]
    args = json.loads((REFERENCE / "modules" / f"{name}_tiny.json").read_text())["constructor_args"]
    net = build(CONFIGS[name].from_official(args))
    net.load_state_dict(load_file(SAMPLING / f"{name}_tiny.safetensors"))
    ref = load_file(SAMPLING / f"{name}.safetensors")
    cond = {k.removeprefix("cond."): v for k, v in ref.items() if k.startswith("cond.")}
    uncond = {k.removeprefix("uncond."): v for k, v in ref.items() if k.startswith("uncond.")}
    assert settings["cfg_rho"] == sampling.CFG_RHO

    generator = torch.Generator().manual_seed(settings["seed"])
    draw = partial(sampling.draw_noise, [generator], settings["shape"][1:])
    x_init = draw()
    if "x_init" in ref:
        assert torch.equal(x_init, ref["x_init"])
    schedule = sampling.cosine_schedule(settings["steps"], settings["shift"])
    fixed = {"size": settings["shape"][2:]} if name == "stage_b" else {}  # Stage B prepares for a latent size
    denoise = sampling.guided(SimpleNamespace(prepare=partial(net.prepare, **fixed), step=net.step),
                              cond, uncond, settings["guidance"])
    steps = list(sampling.ddpm_sample(denoise, x_init, schedule, draw))
    assert len(steps) == settings["steps"]
    for i, (x, x0) in enumerate(steps):
        assert relative_error(x, ref["x"][i]) <= 1e-4, f"x at step {i}"
        assert relative_error(x0, ref["x0"][i]) <= 1e-4, f"x0 at step {i}"


def test_schedule_is_fp32_and_shift_clamps_to_unshifted_range():
    plain, shifted = sampling.cosine_schedule(10, 1.0), sampling.cosine_schedule(10, 2.0)
    assert plain.a.dtype == torch.float32 and shifted.r.dtype == torch.float32
    assert shifted.log_snr.min() >= plain.log_snr.min()  # clamped at logSNR(1) with shift 1
    assert torch.all(shifted.log_snr[1:] <= plain.log_snr[1:])  # shift 2 is noisier
    assert torch.allclose(plain.a**2 + plain.b**2, torch.ones(11))
    assert torch.all((shifted.r >= 0) & (shifted.r <= 1))


class FakeNet:
    """prepare/step like a network: counts each call's batch size."""

    def __init__(self):
        self.prepared, self.steps = [], []

    def prepare(self, c):
        self.prepared.append(c.shape[0])
        return c

    def step(self, x, r, c):
        self.steps.append(x.shape[0])
        return x * c


def test_guidance_at_most_one_runs_only_the_conditional_branch():
    cond, uncond = {"c": torch.full((1, 4), 2.0)}, {"c": torch.zeros(1, 4)}
    x = torch.arange(4.0).view(1, 4)
    net = FakeNet()
    denoise = sampling.guided(net, cond, uncond, 1.0)
    assert torch.equal(denoise(x, torch.zeros(1)), x * 2) and torch.equal(denoise(x, torch.zeros(1)), x * 2)
    assert net.prepared == [1] and net.steps == [1, 1]  # prepared once per request, not per step
    net = FakeNet()
    denoise = sampling.guided(net, cond, uncond, 4.0)
    denoise(x, torch.zeros(1)), denoise(x, torch.zeros(1))
    assert net.prepared == [2] and net.steps == [2, 2]  # one batched pass, conditional and unconditional


def test_guidance_rescale_is_per_sample():
    gen = torch.Generator().manual_seed(0)
    p_cond, p_uncond = torch.randn(3, 4, 5, 5, generator=gen), torch.randn(3, 4, 5, 5, generator=gen)
    batched = sampling.guidance_rescale(p_cond, p_uncond, 4.0)
    for k in range(3):
        alone = sampling.guidance_rescale(p_cond[k:k + 1], p_uncond[k:k + 1], 4.0)
        assert torch.allclose(batched[k:k + 1], alone)


def test_noise_of_a_batch_equals_each_generator_alone():
    shape = (4, 3, 3)
    generators = [torch.Generator().manual_seed(s) for s in (5, 6)]
    batched = [sampling.draw_noise(generators, shape) for _ in range(3)]
    for k, seed in enumerate((5, 6)):
        alone = torch.Generator().manual_seed(seed)
        for draw in batched:
            assert torch.equal(draw[k:k + 1], torch.randn(1, *shape, generator=alone))


def test_noise_drawn_step_by_step_gives_the_images_of_noise_drawn_up_front():
    """The engine draws each step's noise when the step needs it; the trajectory must be bit for bit
    the one of all draws made up front as (steps + 1, B, …), the stream the official code consumes."""
    shape, steps, seeds = (4, 6, 5), 7, (11, 12)
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    per_sample = [torch.stack([torch.randn(1, *shape, generator=g) for _ in range(steps + 1)]) for g in generators]
    upfront = torch.cat(per_sample, dim=1)  # (steps + 1, B, *shape): the former allocation
    schedule = sampling.cosine_schedule(steps, 2.0)
    denoise = lambda x, r: 0.3 * x.flip(-1) + r.view(-1, 1, 1, 1)
    recorded = iter(upfront[1:])
    before = list(sampling.ddpm_sample(denoise, upfront[0], schedule, lambda: next(recorded)))

    generators = [torch.Generator().manual_seed(s) for s in seeds]
    draw = partial(sampling.draw_noise, generators, shape)
    after = list(sampling.ddpm_sample(denoise, draw(), schedule, draw))
    assert len(after) == steps
    for (x_a, x0_a), (x_b, x0_b) in zip(before, after):
        assert torch.equal(x_a, x_b) and torch.equal(x0_a, x0_b)
