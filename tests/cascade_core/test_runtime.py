"""runtime.apply: the one place where CPU layers, compiling and the allocator policy reach the networks."""
import pytest
import torch

import cascade_core as cc
from cascade_core import cpu_layers, runtime
from cascade_core.cpu_layers import OneDNNLinear, SumOfSquaresGRN
from cascade_core.models import build
from tests.conftest import TINY_CASCADE


def tiny_networks(dtype=torch.float32):
    return {stage: build(f"{stage}_tiny").to(dtype).requires_grad_(False) for stage in ("stage_c", "stage_b", "stage_a")}


@pytest.fixture
def no_allocator_change(monkeypatch):
    """Record calls of the process-wide allocator policy instead of changing it."""
    calls = []
    monkeypatch.setattr(runtime, "reuse_host_buffers", lambda: calls.append(1) or True)
    return calls


def test_cpu_float32_gets_onednn_products_cpu_norms_and_buffer_reuse(no_allocator_change):
    networks = tiny_networks()
    applied = runtime.apply(networks, torch.device("cpu"))
    assert applied == runtime.Runtime(cpu_products=cpu_layers.ONEDNN, cpu_norms=True, host_buffer_reuse=True)
    assert no_allocator_change == [1]
    first = networks["stage_c"].down_blocks[0][0]
    assert type(first.channelwise[0]) is (OneDNNLinear if cpu_layers.ONEDNN else torch.nn.Linear)
    assert type(first.channelwise[2]) is SumOfSquaresGRN
    assert not any(isinstance(m, OneDNNLinear) for m in networks["stage_a"].modules())  # only the step networks


def test_policies_can_be_declined(no_allocator_change):
    networks = tiny_networks()
    applied = runtime.apply(networks, torch.device("cpu"), cpu_products=False, host_buffer_reuse=False)
    assert applied == runtime.Runtime(cpu_norms=True)
    assert no_allocator_change == []
    assert not any(isinstance(m, OneDNNLinear) for m in networks["stage_b"].modules())


def test_bfloat16_products_stay_plain(no_allocator_change):
    networks = tiny_networks(torch.bfloat16)
    assert not runtime.apply(networks, torch.device("cpu")).cpu_products
    assert not any(isinstance(m, OneDNNLinear) for m in networks["stage_c"].modules())


def test_compiling_compiles_the_blocks_and_leaves_the_layers_plain(no_allocator_change, monkeypatch):
    compiled = []
    monkeypatch.setattr(runtime, "compile_blocks", lambda net, mode: compiled.append((type(net).__name__, mode)))
    networks = tiny_networks()
    applied = runtime.apply(networks, torch.device("cpu"), compile="default")
    assert compiled == [("StageC", "default"), ("StageB", "default")]
    assert not applied.cpu_products and not applied.cpu_norms
    assert not any(isinstance(m, (OneDNNLinear, SumOfSquaresGRN)) for m in networks["stage_c"].modules())


def test_loaded_models_record_what_was_applied():
    model = cc.load(TINY_CASCADE, device="cpu", dtype="float32")
    assert model.runtime.cpu_norms and model.runtime.compile == "none"
    assert model.runtime.cpu_products == cpu_layers.ONEDNN
