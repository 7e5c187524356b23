"""The CPU twins of the per-step layers: the plain layers' numbers, swapped in and out exactly."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cascade_core import cpu_layers
from cascade_core.cpu_layers import ONEDNN, OneDNNLinear, OneDNNMultiheadAttention, SumOfSquaresGRN
from cascade_core.models import build
from cascade_core.models.blocks import GlobalResponseNorm, MultiheadAttention

needs_onednn = pytest.mark.skipif(not ONEDNN, reason="this PyTorch has no oneDNN (mkldnn)")


def relative(a, b):
    return ((a - b).norm() / b.norm()).item()


def twin_layer(bias=True):
    layer = nn.Linear(96, 40, bias=bias).requires_grad_(False)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(40, 96, generator=torch.Generator().manual_seed(0)))
    layer.__class__ = OneDNNLinear
    return layer


@needs_onednn
@pytest.mark.parametrize("shape", [(1, 96), (7, 96), (2, 5, 3, 96)])
@pytest.mark.parametrize("bias", [True, False])
def test_onednn_product_equals_f_linear(shape, bias, monkeypatch):
    calls = []
    original = torch.ops.mkldnn._linear_pointwise
    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", lambda *a: calls.append(1) or original(*a))
    layer = twin_layer(bias=bias)
    x = torch.randn(*shape)
    out = layer(x)
    assert calls == [1]  # it did take oneDNN's path
    assert out.shape == (*shape[:-1], 40)
    assert relative(out, F.linear(x, layer.weight, layer.bias)) <= 1e-6


@needs_onednn
def test_a_non_contiguous_input_is_multiplied_right():
    layer = twin_layer()
    x = torch.randn(5, 96, 3).transpose(1, 2)  # (5, 3, 96), not contiguous: a channels-last view
    assert relative(layer(x), F.linear(x, layer.weight, layer.bias)) <= 1e-6


def test_plain_product_where_onednn_does_not_apply(monkeypatch):
    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", lambda *a: pytest.fail("oneDNN was used"))
    layer = twin_layer().bfloat16()
    x = torch.randn(4, 96, dtype=torch.bfloat16)
    assert torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))  # bfloat16
    layer.float().requires_grad_(True)
    x = torch.randn(4, 96)
    assert torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))  # autograd needs the plain product


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-6), (torch.bfloat16, 1e-2)])
def test_the_sum_of_squares_norm_equals_the_plain_one(dtype, tolerance):
    x = torch.randn(2, 5, 7, 16, generator=torch.Generator().manual_seed(0)).to(dtype)  # (B, H, W, C)
    expected = x.double().square().sum(dim=(1, 2), keepdim=True).sqrt()
    plain, twin = GlobalResponseNorm(16), GlobalResponseNorm(16)
    twin.__class__ = SumOfSquaresGRN
    for norm in (plain.pixel_norm(x), twin.pixel_norm(x)):
        assert norm.shape == (2, 1, 1, 16) and norm.dtype == dtype
        assert ((norm.double() - expected).norm() / expected.norm()).item() <= tolerance


def test_swaps_reach_every_step_layer_keep_the_numbers_and_unswap_exactly():
    net = build("stage_b_tiny").requires_grad_(False)
    before = {k: (v.data_ptr(), v.shape) for k, v in net.state_dict().items()}
    plain_types = [type(m) for m in net.modules()]
    gen = torch.Generator().manual_seed(0)
    x, r = torch.randn(2, 4, 16, 16, generator=gen), torch.full((2,), 0.3)
    with torch.inference_mode():
        prepared = net.prepare(torch.randn(2, 16, 4, 4, generator=gen), torch.randn(2, 1, 32, generator=gen), (16, 16))
        reference = net.step(x, r, prepared)
        layers, norms = cpu_layers.swap_products(net), cpu_layers.swap_grn(net)
        swapped = net.step(x, r, prepared)
    resblocks = [m for m in net.modules() if type(m).__name__ == "ResBlock"]
    attentions = [m for m in net.modules() if isinstance(m, MultiheadAttention)]
    timesteps = [m for m in net.modules() if type(m).__name__ == "TimestepBlock"]
    assert layers == 2 * len(resblocks) + 2 * len(attentions) + len(timesteps)
    assert norms == len(resblocks) and all(type(b.channelwise[2]) is SumOfSquaresGRN for b in resblocks)
    assert all(type(m) is OneDNNMultiheadAttention and type(m.out_proj) is OneDNNLinear for m in attentions)
    assert all(type(m.kv_mapper[1]) is nn.Linear for m in net.modules() if hasattr(m, "kv_mapper"))  # once a request
    assert {k: (v.data_ptr(), v.shape) for k, v in net.state_dict().items()} == before  # shared, not copied
    assert relative(swapped, reference) <= 1e-5
    cpu_layers.unswap(net)
    assert [type(m) for m in net.modules()] == plain_types
