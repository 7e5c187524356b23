"""CUDA graphs of the step (cascade_core/cuda_graphs.py): one capture per layout, an LRU of them, the
conditioning copied in when it changes. Capturing needs a CUDA device; on the CPU a stand-in capture
that runs the same function on the static inputs checks everything around it."""
from dataclasses import dataclass

import pytest
import torch

import cascade_core as cc
from cascade_core import cuda_graphs
from cascade_core.options import EngineOptions, OptionsError


class EagerGraph:
    """A CUDA graph's stand-in: replay() runs the captured function again on the static inputs."""

    def __init__(self, run):
        self.run, self.replays = run, 0

    def replay(self):
        self.replays += 1
        self.output.copy_(self.run())

    def pool(self):
        return "pool"


def eager_capture(run, pool):
    graph = EagerGraph(run)
    graph.output = run()
    return graph, graph.output


@dataclass(frozen=True)
class Cond:
    scale: torch.Tensor  # (B, 3): per row
    shared: torch.Tensor  # (3,): per network


def step(x, r, c):
    return x * c.scale + c.shared + r.view(-1, 1)


def cond(batch, value):
    return Cond(torch.full((batch, 3), float(value)), torch.ones(3))


def test_each_layout_is_captured_once_and_replayed():
    graphed = cuda_graphs.GraphedStep(size=2, capture=eager_capture)
    x, r, c = torch.randn(2, 3), torch.rand(2), cond(2, 2.0)
    assert torch.equal(graphed(step, x, r, c), step(x, r, c))
    x2 = torch.randn(2, 3)
    assert torch.equal(graphed(step, x2, r, c), step(x2, r, c))  # new x copied in
    assert graphed.captures == 1 and graphed.pool == "pool"
    other = cond(2, 5.0)  # another request: its conditioning is copied in
    assert torch.equal(graphed(step, x2, r, other), step(x2, r, other))
    assert graphed.captures == 1


def test_the_least_recently_used_graph_goes_first():
    graphed = cuda_graphs.GraphedStep(size=2, capture=eager_capture)
    run = lambda b: graphed(step, torch.ones(b, 3), torch.zeros(b), cond(b, 1.0))
    run(1), run(2), run(1), run(4)  # 2 is the least recently used when 4 comes
    assert graphed.captures == 3 and len(graphed.graphs) == 2
    run(1)
    assert graphed.captures == 3
    run(2)
    assert graphed.captures == 4


def test_a_layout_that_cannot_be_captured_runs_eagerly(caplog):
    def failing(run, pool):
        raise RuntimeError("operation not permitted when stream is capturing")

    graphed = cuda_graphs.GraphedStep(capture=failing)
    x, r, c = torch.randn(1, 3), torch.rand(1), cond(1, 3.0)
    assert torch.equal(graphed(step, x, r, c), step(x, r, c))
    assert torch.equal(graphed(step, x, r, c), step(x, r, c))
    assert graphed.eager and "runs eagerly" in caplog.text


def test_off_cuda_nothing_is_captured():
    net = cc.load_demo("cpu").stage_c
    assert cuda_graphs.enable(net) is None
    x, r = torch.randn(2, 16, 6, 6), torch.rand(2)
    with torch.inference_mode():
        conditioning = net.prepare(torch.randn(2, 77, net.config.c_clip_text),
                                   torch.randn(2, 1, net.config.c_clip_text_pooled),
                                   torch.zeros(2, 1, net.config.c_clip_img))
        assert torch.equal(cuda_graphs.step(net, x, r, conditioning), net.step(x, r, conditioning))


def test_a_request_through_graphs_equals_one_without():
    """The pipeline's steps go through the graphs (two layouts: Stage C and Stage B), and the images
    are the same bits; a second request replays them with its own conditioning."""
    model = cc.load_demo("cpu")
    request = cc.GenerationRequest("a red fox", seed=4, width=256, height=256, prior_steps=3, decoder_steps=2)
    other = cc.GenerationRequest("a cat", seed=9, width=256, height=256, prior_steps=3, decoder_steps=2)
    plain = [list(cc.generate(model, r, keep_tensors=True))[-1] for r in (request, other)]
    graphs = [cuda_graphs.enable(net, capture=eager_capture) for net in (model.stage_c, model.stage_b)]
    try:
        replayed = [list(cc.generate(model, r, keep_tensors=True))[-1] for r in (request, other)]
    finally:
        for net in (model.stage_c, model.stage_b):
            cuda_graphs.disable(net)
    assert [g.captures for g in graphs] == [1, 1]
    assert sum(c.graph.replays for c in graphs[0].graphs.values()) == 6  # Stage C: 3 steps × 2 requests
    for a, b in zip(plain, replayed):
        for name in ("latent_c", "latent_b", "image"):
            assert torch.equal(a.tensors[name], b.tensors[name]), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="capturing a CUDA graph needs a CUDA device; "
                    "bench/gpu.sh checks the real capture against eager steps on the GPU")
def test_a_captured_step_on_cuda_equals_the_eager_step():
    net = cc.load_demo("cuda").stage_b
    graphed = cuda_graphs.GraphedStep()
    with torch.inference_mode():
        conditioning = net.prepare(torch.randn(2, 16, 6, 6, device="cuda"),
                                   torch.randn(2, 1, net.config.c_clip, device="cuda"), (64, 64))
        x, r = torch.randn(2, 4, 64, 64, device="cuda"), torch.rand(2, device="cuda")
        assert torch.allclose(graphed(net.step, x, r, conditioning), net.step(x, r, conditioning), atol=1e-5)
        assert graphed.captures == 1


def test_cuda_graphs_option_needs_weights_on_the_device():
    assert EngineOptions(cuda_graphs=True, device="cuda").cuda_graphs
    with pytest.raises(OptionsError, match="cuda-graphs"):
        EngineOptions(cuda_graphs=True, offload="model")
    with pytest.raises(OptionsError, match="cuda-graphs"):
        EngineOptions(cuda_graphs=True, compile="reduce-overhead")
