import pytest
import torch
import torch.nn.functional as F

import cascade_core as cc
from cascade_core import loading
from cascade_core.models import build
from cascade_core.models.linear import MKL, Linear, packed_bytes, set_packing
from tests.conftest import TINY_CASCADE

pytestmark = pytest.mark.skipif(not MKL, reason="packed weights need PyTorch's MKL")


def relative(a, b):
    return ((a - b).norm() / b.norm()).item()


def packed_layer(seed=0, bias=True):
    torch.manual_seed(seed)  # test data only; the engine never seeds globally
    layer = Linear(96, 40, bias=bias).requires_grad_(False)
    set_packing(layer, True)
    return layer


@pytest.mark.parametrize("shape", [(1, 96), (7, 96), (2, 5, 3, 96)])
@pytest.mark.parametrize("bias", [True, False])
def test_packed_product_equals_f_linear(shape, bias):
    layer = packed_layer(bias=bias)
    x = torch.randn(*shape)
    out = layer(x)
    assert layer.packing.packed is not None  # it did take the packed path
    assert out.shape == (*shape[:-1], 40)
    assert relative(out, F.linear(x, layer.weight, layer.bias)) <= 1e-6


def test_packs_once_per_row_count_and_again_when_the_weights_change():
    layer = packed_layer()
    layer(torch.randn(8, 96))
    first = layer.packing.packed
    layer(torch.randn(8, 96))
    assert layer.packing.packed is first  # same rows, same weights: reused
    layer(torch.randn(3, 96))
    assert layer.packing.packed is not first  # other rows: packed again
    layer.weight.mul_(2)  # weights changed in place
    x = torch.randn(3, 96)
    assert relative(layer(x), F.linear(x, layer.weight, layer.bias)) <= 1e-6


def test_plain_product_where_packing_does_not_apply():
    layer = packed_layer().bfloat16()
    layer(torch.randn(4, 96, dtype=torch.bfloat16))
    assert layer.packing.packed is None  # bfloat16
    layer.float().requires_grad_(True)
    layer(torch.randn(4, 96))
    assert layer.packing.packed is None  # training: autograd needs the plain product
    layer.requires_grad_(False)
    set_packing(layer, False)
    layer(torch.randn(4, 96))
    assert layer.packing.packed is None  # turned off


def test_set_packing_reaches_every_step_product_and_off_frees_the_copies():
    net = build("stage_b_tiny").requires_grad_(False)
    layers = set_packing(net, True)
    linears = sum(isinstance(m, Linear) for m in net.modules())
    attentions = sum(hasattr(m, "in_proj_weight") for m in net.modules())
    assert layers == linears + attentions
    assert packed_bytes(net) == 4 * sum(m.weight.numel() for m in net.modules() if isinstance(m, Linear)) + \
        4 * sum(m.in_proj_weight.numel() for m in net.modules() if hasattr(m, "in_proj_weight"))
    set_packing(net, False)
    assert all(m.packing.packed is None for m in net.modules() if hasattr(m, "packing"))


def test_a_cpu_model_packs_when_the_host_has_the_memory(monkeypatch):
    said = []
    first_layer = lambda model: model.stage_c.down_blocks[0][0].channelwise[0]
    model = cc.load(TINY_CASCADE, device="cpu", dtype="float32", progress=said.append)
    assert model.cpu_packing and first_layer(model).packing.enabled
    monkeypatch.setattr(loading, "packed_bytes", lambda net: 10**15)  # more than any host has
    model = cc.load(TINY_CASCADE, device="cpu", dtype="float32", progress=said.append)
    assert not model.cpu_packing and not first_layer(model).packing.enabled
    assert any("not packing the weights" in line and "1.3× slower" in line for line in said)
    said.clear()
    model = cc.load(TINY_CASCADE, device="cpu", dtype="bfloat16", progress=said.append)
    assert not model.cpu_packing and not any("packing" in line for line in said)  # nothing to pack
