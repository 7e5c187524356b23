"""The one place where runtime policy is applied to loaded networks.

The networks (`models/`) are plain PyTorch modules that know nothing of devices, packing,
compiling or allocators. After loading, `apply` makes them run well where they are:

- CPU, float32: per-step products by MKL-packed weights and GRN's CPU-friendly norm
  (`cpu_layers`), when the host has room for the packed copies; large host buffers reused
  from one heap (`devices.reuse_host_buffers`).
- `compile`: each block of Stage C's and Stage B's levels is compiled (`compiling`).

Offloading (`offload.Placement`) is applied at the same time, by `loading.load`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from . import cpu_layers, memory
from .compiling import compile_blocks
from .devices import reuse_host_buffers
from .units import format_bytes

log = logging.getLogger(__name__)
STEP_NETWORKS = ("stage_c", "stage_b")  # the networks a denoising step runs


@dataclass(frozen=True)
class Runtime:
    """What was applied to a model's networks (kept in `CascadeModel.runtime`)."""
    compile: str = "none"  # torch.compile mode of Stage C's and Stage B's blocks
    cpu_packing: bool = False  # Stage C's and B's per-step products use MKL-packed weights
    cpu_norms: bool = False  # GRN takes its norm as a product and a sum
    host_buffer_reuse: bool = False  # glibc keeps large buffers in one heap


def apply(networks: dict[str, torch.nn.Module], device: torch.device, *, compile: str = "none",
          cpu_packing: bool = True, host_buffer_reuse: bool = True, say=lambda message: None) -> Runtime:
    """Apply the runtime policy in place to `networks` (by stage name) on `device`; returns what was applied.

    cpu_packing / host_buffer_reuse: allow these on the CPU (benchmarks turn them off to compare).
    """
    steppers = [networks[s] for s in STEP_NETWORKS if s in networks]
    on_cpu = device.type == "cpu"
    for net in steppers:
        compile_blocks(net, compile)
    norms = on_cpu and compile == "none"
    if norms:
        for net in steppers:
            cpu_layers.swap_grn(net)
    packing = cpu_packing and norms and _room_to_pack(steppers, say)
    if packing:
        for net in steppers:
            cpu_layers.swap_packed(net)
    reuse = host_buffer_reuse and on_cpu and reuse_host_buffers()
    return Runtime(compile=compile, cpu_packing=packing, cpu_norms=norms, host_buffer_reuse=reuse)


def _room_to_pack(steppers: list[torch.nn.Module], say) -> bool:
    """Whether packing applies (float32 on an MKL CPU) and the host has memory for the packed copies:
    float32 steps on the CPU run 1.2–1.9× faster with them."""
    if not all(cpu_layers.packs(torch.device("cpu"), next(net.parameters()).dtype) for net in steppers):
        return False
    extra = sum(cpu_layers.packed_bytes(net) for net in steppers)
    free = memory.host_available_bytes()
    if free < extra + memory.ACTIVATION_MARGIN:
        message = (f"not packing the weights for the CPU's matrix library: it needs {format_bytes(extra)} more "
                   f"memory and {format_bytes(free)} is free; steps run about 1.3× slower without it")
        log.info(message)
        say(message)
        return False
    return True


def prepare_process(device: str) -> None:
    """For a server, before it starts its threads: on a CPU run, glibc serves large buffers from one
    heap that every thread shares (devices.reuse_host_buffers); `apply` would set it too late for them."""
    if device in ("auto", "cpu"):
        reuse_host_buffers()
