import pytest
import torch

from cascade_core.models.blocks import l2_over_pixels


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-6), (torch.bfloat16, 1e-2)])
def test_the_fused_norm_of_gpus_equals_the_product_and_sum_of_cpus(dtype, tolerance):
    x = torch.randn(2, 5, 7, 16, generator=torch.Generator().manual_seed(0)).to(dtype)  # (B, H, W, C)
    expected = x.double().square().sum(dim=(1, 2), keepdim=True).sqrt()
    for fused in (True, False):
        norm = l2_over_pixels(x, fused)
        assert norm.shape == (2, 1, 1, 16) and norm.dtype == dtype
        assert ((norm.double() - expected).norm() / expected.norm()).item() <= tolerance
