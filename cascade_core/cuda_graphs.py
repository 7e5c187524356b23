"""CUDA graphs of the denoising step: each input layout captured once, then replayed.

A step of the full Stage C at batch 1 launches about a thousand kernels; at 1024² on an H200 it
runs in tens of milliseconds, so launching them one by one from Python is a real share of it.
A CUDA graph records the launches once and replays them with one call (PyTorch's
`torch.cuda.graphs`). The step's shapes are static per request size and batch, so each layout —
x's shape and dtype, r's shape, the prepared conditioning's shapes (prepared.layout) — is
captured on first use and kept in a small LRU cache (`MAX_GRAPHS`), whose graphs share one memory
pool. They never run at the same time, and each replay's output is copied out at once, so
sharing is safe.

A replay reads fixed memory: x and r are copied into the graph's static inputs every step, and
the prepared conditioning (text keys and values, made once per request) only when it is another
one than the last replay's. Compiled blocks (`--compile default` or `max-autotune`) are captured
as well, after their warm-up has compiled them; `reduce-overhead` makes its own graphs and does
not go with this. Weights must stay on the device (`--offload none`).

Off CUDA nothing is captured: `step` is the network's own step.
"""
from __future__ import annotations

import collections
import logging
import weakref
from typing import Any, Callable

import torch

from . import prepared as conditioning

log = logging.getLogger(__name__)
MAX_GRAPHS = 8  # captured layouts kept per network: sizes × batch sizes in use
WARMUP_RUNS = 2  # eager runs on a side stream before capturing (cuBLAS workspaces, lazy inits, compiling)

Step = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]  # (x, r, prepared) → prediction
Capture = Callable[[Callable[[], torch.Tensor], Any], tuple[Any, torch.Tensor]]  # (run, pool) → (graph, output)


def cuda_capture(run: Callable[[], torch.Tensor], pool) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
    """Warm `run` up on a side stream, then capture it into a CUDA graph in `pool`; (graph, its output)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(WARMUP_RUNS):
            run()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool):
        output = run()
    return graph, output


class _Captured:
    """One captured layout: its static inputs, its graph and output, and which conditioning it holds."""

    def __init__(self, step: Step, x: torch.Tensor, r: torch.Tensor, prepared: Any, capture: Capture, pool):
        self.x, self.r, self.prepared = x.clone(), r.clone(), conditioning.clone(prepared)
        self.source = weakref.ref(prepared)  # the conditioning copied in last
        self.graph, self.output = capture(lambda: step(self.x, self.r, self.prepared), pool)

    def __call__(self, x: torch.Tensor, r: torch.Tensor, prepared: Any) -> torch.Tensor:
        self.x.copy_(x)
        self.r.copy_(r)
        if self.source() is not prepared:  # another request or batch: its keys and values, once
            for static, tensor in zip(conditioning.tensors(self.prepared), conditioning.tensors(prepared)):
                static.copy_(tensor)
            self.source = weakref.ref(prepared)
        self.graph.replay()
        return self.output.clone()


class GraphedStep:
    """A network's step through CUDA graphs, one per input layout, the `size` latest used kept.

    capture: how a graph is made (cuda_capture; tests pass a stand-in that runs eagerly). The first
    graph's memory pool is every later one's. A layout whose capture fails runs eagerly from then
    on, with a warning."""

    def __init__(self, size: int = MAX_GRAPHS, capture: Capture = cuda_capture):
        self.size, self.capture, self.pool = size, capture, None
        self.graphs: collections.OrderedDict[tuple, _Captured] = collections.OrderedDict()
        self.eager: set[tuple] = set()
        self.captures = 0  # graphs made so far

    def __call__(self, step: Step, x: torch.Tensor, r: torch.Tensor, prepared: Any) -> torch.Tensor:
        """`step(x, r, prepared)`, replayed from the graph of its layout (captured now if it is new)."""
        key = (tuple(x.shape), x.dtype, tuple(r.shape), r.dtype, conditioning.layout(prepared))
        if key in self.eager:
            return step(x, r, prepared)
        graph = self.graphs.get(key)
        if graph is None:
            try:
                graph = _Captured(step, x, r, prepared, self.capture, self.pool)
            except RuntimeError as e:  # an operation that cannot be captured: this layout stays eager
                log.warning("could not capture a CUDA graph of the step for %s: %s; it runs eagerly", key[0], e)
                self.eager.add(key)
                return step(x, r, prepared)
            self.pool = self.pool if self.pool is not None else graph.graph.pool()
            self.captures += 1
            self.graphs[key] = graph
            if len(self.graphs) > self.size:
                self.graphs.popitem(last=False)
        self.graphs.move_to_end(key)
        return graph(x, r, prepared)


_GRAPHED: "weakref.WeakKeyDictionary[torch.nn.Module, GraphedStep]" = weakref.WeakKeyDictionary()


def enable(net: torch.nn.Module, size: int = MAX_GRAPHS, capture: Capture = cuda_capture) -> GraphedStep | None:
    """Run `net`'s steps through CUDA graphs from now on (a network on a CUDA device; else nothing
    changes and None is returned)."""
    device = next(net.parameters()).device
    if capture is cuda_capture and device.type != "cuda":
        return None
    _GRAPHED[net] = GraphedStep(size, capture)
    return _GRAPHED[net]


def disable(net: torch.nn.Module) -> None:
    """Back to the network's own step; its graphs are freed."""
    _GRAPHED.pop(net, None)


def step(net: torch.nn.Module, x: torch.Tensor, r: torch.Tensor, prepared: Any) -> torch.Tensor:
    """One denoising step of `net`: replayed from a graph if graphs are enabled for it, else its own step."""
    graphed = _GRAPHED.get(net)
    return net.step(x, r, prepared) if graphed is None else graphed(net.step, x, r, prepared)
