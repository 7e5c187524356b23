"""The CPU twins of the per-step layers: same numbers as the plain layers, swapped in and out exactly."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cascade_core import cpu_layers
from cascade_core.cpu_layers import MKL, PackedLinear, PackedMultiheadAttention, SumOfSquaresGRN
from cascade_core.models import build
from cascade_core.models.blocks import GlobalResponseNorm, MultiheadAttention

needs_mkl = pytest.mark.skipif(not MKL, reason="packed weights need PyTorch's MKL")


def relative(a, b):
    return ((a - b).norm() / b.norm()).item()


def packed_layer(bias=True):
    layer = nn.Linear(96, 40, bias=bias).requires_grad_(False)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(40, 96, generator=torch.Generator().manual_seed(0)))
    layer.__class__, layer.packing = PackedLinear, cpu_layers.PackedWeight()
    return layer


@needs_mkl
@pytest.mark.parametrize("shape", [(1, 96), (7, 96), (2, 5, 3, 96)])
@pytest.mark.parametrize("bias", [True, False])
def test_packed_product_equals_f_linear(shape, bias):
    layer = packed_layer(bias=bias)
    x = torch.randn(*shape)
    out = layer(x)
    assert layer.packing.packed is not None  # it did take the packed path
    assert out.shape == (*shape[:-1], 40)
    assert relative(out, F.linear(x, layer.weight, layer.bias)) <= 1e-6


@needs_mkl
def test_packs_once_per_row_count_and_again_after_release():
    layer = packed_layer()
    layer(torch.randn(8, 96))
    first = layer.packing.packed
    layer(torch.randn(8, 96))
    assert layer.packing.packed is first  # same rows, same weights: reused
    layer(torch.randn(3, 96))
    assert layer.packing.packed is not first  # other rows: packed again
    with torch.no_grad():
        layer.weight.mul_(2)  # weights changed in place: the owner releases the packed copies
    cpu_layers.release_packed(layer)
    x = torch.randn(3, 96)
    assert relative(layer(x), F.linear(x, layer.weight, layer.bias)) <= 1e-6


@needs_mkl
def test_weights_moved_to_other_storage_are_packed_again():
    layer = packed_layer()
    x = torch.randn(3, 96)
    layer(x)
    layer.weight.data = layer.weight.data * 3  # as offloading points a parameter at other memory
    assert relative(layer(x), F.linear(x, layer.weight, layer.bias)) <= 1e-6


def test_plain_product_where_packing_does_not_apply():
    layer = packed_layer().bfloat16()
    layer(torch.randn(4, 96, dtype=torch.bfloat16))
    assert layer.packing.packed is None  # bfloat16


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-6), (torch.bfloat16, 1e-2)])
def test_the_sum_of_squares_norm_equals_the_plain_one(dtype, tolerance):
    x = torch.randn(2, 5, 7, 16, generator=torch.Generator().manual_seed(0)).to(dtype)  # (B, H, W, C)
    expected = x.double().square().sum(dim=(1, 2), keepdim=True).sqrt()
    plain, twin = GlobalResponseNorm(16), GlobalResponseNorm(16)
    twin.__class__ = SumOfSquaresGRN
    for norm in (plain.pixel_norm(x), twin.pixel_norm(x)):
        assert norm.shape == (2, 1, 1, 16) and norm.dtype == dtype
        assert ((norm.double() - expected).norm() / expected.norm()).item() <= tolerance


def test_swaps_reach_every_step_layer_keep_the_state_dict_and_unswap_exactly():
    net = build("stage_b_tiny").requires_grad_(False)
    before = {k: (v.data_ptr(), v.shape) for k, v in net.state_dict().items()}
    plain_types = [type(m) for m in net.modules()]
    layers = cpu_layers.swap_packed(net)
    norms = cpu_layers.swap_grn(net)
    resblocks = [m for m in net.modules() if type(m).__name__ == "ResBlock"]
    attentions = [m for m in net.modules() if isinstance(m, MultiheadAttention)]
    timesteps = [m for m in net.modules() if type(m).__name__ == "TimestepBlock"]
    assert layers == 2 * len(resblocks) + 2 * len(attentions) + len(timesteps)
    assert norms == len(resblocks) and all(type(b.channelwise[2]) is SumOfSquaresGRN for b in resblocks)
    assert all(type(m) is PackedMultiheadAttention and type(m.out_proj) is PackedLinear for m in attentions)
    assert all(type(m.kv_mapper[1]) is nn.Linear for m in net.modules() if hasattr(m, "kv_mapper"))  # once a request
    assert {k: (v.data_ptr(), v.shape) for k, v in net.state_dict().items()} == before  # shared, not copied
    assert cpu_layers.packed_bytes(net) == 4 * (
        sum(b.channelwise[0].weight.numel() + b.channelwise[4].weight.numel() for b in resblocks)
        + sum(m.mapper.weight.numel() for m in timesteps)
        + sum(m.out_proj.weight.numel() + m.in_proj_weight.numel() for m in attentions))
    cpu_layers.unswap(net)
    assert [type(m) for m in net.modules()] == plain_types
    assert not any(hasattr(m, "packing") for m in net.modules())
