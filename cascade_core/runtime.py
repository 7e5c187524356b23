"""The one place where runtime policy is applied to loaded networks.

The networks (`models/`) are plain PyTorch modules that know nothing of devices, packing,
compiling or allocators. After loading, `apply` makes them run well where they are:

- CPU, float32: per-step products through oneDNN and GRN's CPU-friendly norm (`cpu_layers`);
  large host buffers reused from one heap (`devices.reuse_host_buffers`).
- `compile`: each block of Stage C's and Stage B's levels is compiled (`compiling`).

Offloading (`offload.Placement`) is applied at the same time, by `loading.load`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from . import cpu_layers
from .compiling import compile_blocks
from .devices import dtype_of, reuse_host_buffers

STEP_NETWORKS = ("stage_c", "stage_b")  # the networks a denoising step runs


@dataclass(frozen=True)
class Runtime:
    """What was applied to a model's networks (kept in `CascadeModel.runtime`)."""
    compile: str = "none"  # torch.compile mode of Stage C's and Stage B's blocks
    cpu_products: bool = False  # Stage C's and B's per-step products go through oneDNN
    cpu_norms: bool = False  # GRN takes its norm as a product and a sum
    host_buffer_reuse: bool = False  # glibc keeps large buffers in one heap


def apply(networks: dict[str, torch.nn.Module], device: torch.device, *, compile: str = "none",
          cpu_products: bool = True, host_buffer_reuse: bool = True) -> Runtime:
    """Apply the runtime policy in place to `networks` (by stage name) on `device`; returns what was applied.

    cpu_products / host_buffer_reuse: allow these on the CPU (benchmarks turn them off to compare).
    """
    steppers = [networks[s] for s in STEP_NETWORKS if s in networks]
    on_cpu = device.type == "cpu"
    for net in steppers:
        compile_blocks(net, compile)
    norms = on_cpu and compile == "none"
    if norms:
        for net in steppers:
            cpu_layers.swap_grn(net)
    products = cpu_products and norms and all(cpu_layers.applies(device, dtype_of(n)) for n in steppers)
    if products:
        for net in steppers:
            cpu_layers.swap_products(net)
    reuse = host_buffer_reuse and on_cpu and reuse_host_buffers()
    return Runtime(compile=compile, cpu_products=products, cpu_norms=norms, host_buffer_reuse=reuse)


def prepare_process(device: str) -> None:
    """For a server, before it starts its threads: on a CPU run, glibc serves large buffers from one
    heap that every thread shares (devices.reuse_host_buffers); `apply` would set it too late for them."""
    if device in ("auto", "cpu"):
        reuse_host_buffers()
