"""Where one guided step's device time goes: torch.profiler's operators by self time, ours and diffusers'."""
from __future__ import annotations

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from .networks import diffusers_twin
from .steps import diffusers_call, step_inputs


def _table(fn, device: torch.device, steps: int, rows: int) -> dict:
    """Operators by self time over `steps` calls (after one untimed call): name, ms per step, share."""
    fn()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            fn()
        torch.cuda.synchronize(device) if device.type == "cuda" else None
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    # operators (launched from the host), not their kernels too: each kernel's time is counted once
    events = [e for e in prof.key_averages() if e.device_type == DeviceType.CPU and getattr(e, key) > 0]
    total = sum(getattr(e, key) for e in events)
    events.sort(key=lambda e: getattr(e, key), reverse=True)
    return {"ms_per_step": total / steps / 1e3,
            "operators": [{"name": e.key, "ms_per_step": getattr(e, key) / steps / 1e3,
                           "share": getattr(e, key) / total, "calls_per_step": e.count / steps}
                          for e in events[:rows]]}


@torch.inference_mode()
def profile_step(net, images: int, latent: tuple[int, int], with_diffusers: bool, steps: int = 3,
                 rows: int = 25) -> dict:
    p = next(net.parameters())
    inputs, x, r, prepare = step_inputs(net, images, latent, p.dtype, p.device)
    prepared = prepare()
    result = {"ours": _table(lambda: net.step(x, r, prepared), p.device, steps, rows)}
    if with_diffusers:
        theirs = diffusers_call(diffusers_twin(net), inputs)
        result["diffusers"] = _table(lambda: theirs(r), p.device, steps, rows)
    return result


def print_profile(stage: str, result: dict) -> None:
    for who, table in result.items():
        print(f"-- {stage}, {who}: {table['ms_per_step']:.2f} ms of operator self time per step")
        for op in table["operators"]:
            print(f"   {op['ms_per_step']:9.3f} ms {op['share']:6.1%} {op['calls_per_step']:6.0f}x  {op['name']}")
