"""Where the networks' weights live during a request: the `--offload` modes.

- none: every network stays on the device.
- model: only the running stage's network is on the device (text encoder, then Stage C, then
  Stage B); the others wait in pinned host memory. Stage A and the previewer are small and stay.
  Entering a stage also starts copying the next one, on a side CUDA stream, when it fits too.
- sequential: every weight stays in host memory and is copied to the device for the one
  operation that uses it (a TorchFunctionMode swaps it in), so the device holds activations
  and one layer's weights. Slow, but it runs the full model on a small GPU.

Moving a network never copies back: the host copy is kept, and `param.data` is pointed at it.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch.overrides import TorchFunctionMode

from .memory import BIG_STAGES


class Placement:
    """Moves a model's networks between host and device at stage boundaries (mode `model`), or
    streams weights per operation inside `compute()` (mode `sequential`)."""

    def __init__(self, networks: dict[str, torch.nn.Module], device: torch.device, mode: str = "none"):
        """`networks` are on `device` for mode none, on the host for the others (mode: options.OFFLOAD_MODES)."""
        self.device, self.mode = device, mode
        self.offloaded = {s: n for s, n in networks.items() if mode == "sequential" or (mode == "model" and s in BIG_STAGES)}
        self.host = {s: _pin(n, device) for s, n in self.offloaded.items()}  # the tensors that stay on the host
        self.resident: set[str] = set(networks) - set(self.offloaded)
        self._copies = torch.cuda.Stream(device) if device.type == "cuda" and mode == "model" else None
        self._streamed = {id(t) for n in self.offloaded.values() for t in _tensors(n)} if mode == "sequential" else set()

    def activate(self, stage: str, then: str | None = None) -> None:
        """Before running `stage`: put it on the device (waiting for its copy), evict the other big
        stages, and start copying `then` if it fits beside it. No-op except in mode `model`."""
        if self.mode != "model" or stage not in self.offloaded:
            return
        for other in [s for s in self.resident if s in self.offloaded and s not in (stage, then)]:
            self._evict(other)
        if stage not in self.resident:
            self._load(stage, stream=None)
        elif self._copies is not None:
            torch.cuda.current_stream(self.device).wait_stream(self._copies)
        if then in self.offloaded and then not in self.resident and self._fits(then):
            self._load(then, stream=self._copies)

    def compute(self) -> contextlib.AbstractContextManager:
        """Wrap every block of network calls: inference mode, and weight streaming in mode `sequential`."""
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        if self.mode == "sequential":
            stack.enter_context(_Streaming(self._streamed, self.device))
        return stack

    def _load(self, stage: str, stream: torch.cuda.Stream | None) -> None:
        compute = torch.cuda.current_stream(self.device) if stream is not None else None
        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            for tensor, host in zip(_tensors(self.offloaded[stage]), self.host[stage]):
                tensor.data = host.to(self.device, non_blocking=True)
                if compute is not None:  # used on the compute stream: keep the allocator from reusing it early
                    tensor.data.record_stream(compute)
        self.resident.add(stage)

    def _evict(self, stage: str) -> None:
        for tensor, host in zip(_tensors(self.offloaded[stage]), self.host[stage]):
            tensor.data = host
        self.resident.discard(stage)

    def _fits(self, stage: str) -> bool:
        if self.device.type != "cuda":
            return False
        need = sum(t.nelement() * t.element_size() for t in self.host[stage])
        return need + 2 * 10**9 <= torch.cuda.mem_get_info(self.device)[0]


class _Streaming(TorchFunctionMode):
    """Replaces each host-resident weight given to a torch function by a device copy for that call."""

    def __init__(self, streamed: set[int], device: torch.device):
        super().__init__()
        self.streamed, self.device = streamed, device

    def __torch_function__(self, func, types, args=(), kwargs=None):
        args = tuple(self._move(a) for a in args)
        kwargs = {k: self._move(v) for k, v in (kwargs or {}).items()}
        return func(*args, **kwargs)

    def _move(self, value):
        if isinstance(value, (list, tuple)):  # torch.cat([...]) and the like
            return type(value)(self._move(v) for v in value)
        if isinstance(value, torch.Tensor) and id(value) in self.streamed:
            return value.to(self.device, non_blocking=True)
        return value


def _tensors(net: torch.nn.Module) -> Iterator[torch.Tensor]:
    yield from net.parameters()
    yield from net.buffers()


def _pin(net: torch.nn.Module, device: torch.device) -> list[torch.Tensor]:
    """Host copies of a network's tensors, page-locked when copies go to a CUDA device (faster, async)."""
    tensors = list(_tensors(net))
    for tensor in tensors:
        host = tensor.data.cpu()
        tensor.data = host.pin_memory() if device.type == "cuda" else host
    return [t.data for t in tensors]
