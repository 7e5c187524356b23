"""The EfficientNetV2-S encoder: pixels → the 16-channel Stage C latent (official `modules/effnet.py`).

The backbone is EfficientNetV2-S's feature extractor (Tan & Le 2021, "EfficientNetV2", table 4)
with the submodule names of torchvision's `efficientnet_v2_s().features`, so the released
`effnet_encoder.safetensors` loads by name: stem `0`, six stages `1`–`6` of Fused-MBConv and
MBConv blocks (`N.M.block.K`), head `7`. It is built here from that table, without torchvision.
Batch norms are in eval form (running statistics, eps 1e-3), the activation is SiLU; stochastic
depth only acts in training and is left out. The encoder expects ImageNet-normalised input
(`cascade_core.image_preprocess.effnet_preprocess`) and does not resize.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import EffNetConfig

# (block, expand ratio, stride of the first block, channels in, channels out, blocks) per stage.
EFFNET_V2_S_STAGES = (
    ("fused", 1, 1, 24, 24, 2),
    ("fused", 4, 2, 24, 48, 4),
    ("fused", 4, 2, 48, 64, 4),
    ("mb", 4, 2, 64, 128, 6),
    ("mb", 6, 1, 128, 160, 9),
    ("mb", 6, 2, 160, 256, 15),
)
STEM_WIDTH = 24
FEATURES = 1280  # channels of the head, the backbone's output
BN_EPS = 1e-3


def conv_bn(c_in: int, c_out: int, kernel_size: int, stride: int = 1, groups: int = 1,
            activation: bool = True, padding: int | None = None) -> nn.Sequential:
    """Conv (no bias) → BatchNorm → SiLU, indexed `0`, `1` like torchvision's Conv2dNormActivation."""
    padding = kernel_size // 2 if padding is None else padding
    layers = [
        nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, groups=groups, bias=False),
        nn.BatchNorm2d(c_out, eps=BN_EPS),
    ]
    if activation:
        layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    """Channel gating (Hu et al. 2018): x · sigmoid(fc2(SiLU(fc1(mean over H, W of x))))."""

    def __init__(self, c: int, c_squeeze: int):
        super().__init__()
        self.fc1 = nn.Conv2d(c, c_squeeze, kernel_size=1)
        self.fc2 = nn.Conv2d(c_squeeze, c, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
        scale = self.fc2(F.silu(self.fc1(scale))).sigmoid()
        return x * scale


class FusedMBConv(nn.Module):
    """Fused-MBConv (EfficientNetV2 fig. 2): a 3×3 conv does the expansion; residual at stride 1, in = out.

    Ratio 1: conv 3×3 in → out + BN + SiLU. Ratio e: conv 3×3 in → e·in + BN + SiLU, then 1×1 → out + BN.
    """

    def __init__(self, c_in: int, c_out: int, expand: int, stride: int):
        super().__init__()
        self.residual = stride == 1 and c_in == c_out
        if expand == 1:
            self.block = nn.Sequential(conv_bn(c_in, c_out, 3, stride))
        else:
            c_mid = c_in * expand
            self.block = nn.Sequential(conv_bn(c_in, c_mid, 3, stride), conv_bn(c_mid, c_out, 1, activation=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.residual else y


class MBConv(nn.Module):
    """MBConv (MobileNetV2 inverted residual with squeeze-excitation); residual at stride 1, in = out.

    1×1 in → e·in + BN + SiLU, depthwise 3×3 + BN + SiLU, squeeze-excitation to in // 4, 1×1 → out + BN.
    """

    def __init__(self, c_in: int, c_out: int, expand: int, stride: int):
        super().__init__()
        self.residual = stride == 1 and c_in == c_out
        c_mid = c_in * expand
        self.block = nn.Sequential(
            conv_bn(c_in, c_mid, 1),
            conv_bn(c_mid, c_mid, 3, stride, groups=c_mid),
            SqueezeExcitation(c_mid, max(1, c_in // 4)),
            conv_bn(c_mid, c_out, 1, activation=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.residual else y


def efficientnet_v2_s_features(c_in: int = 3, stem_padding: int = 1) -> nn.Sequential:
    """EfficientNetV2-S `features`: (B, c_in, H, W) → (B, 1280, h, w), h = H/32 rounded up at each halving.

    Every 3×3 conv pads 1, so a stride-2 conv maps H → ceil(H/2). The ControlNet replaces the
    stem conv by one without padding (`stem_padding=0`) when it takes other than 3 channels.
    """
    layers = [conv_bn(c_in, STEM_WIDTH, 3, stride=2, padding=stem_padding)]
    for kind, expand, stride, c_first, c_out, n in EFFNET_V2_S_STAGES:
        block = FusedMBConv if kind == "fused" else MBConv
        layers.append(nn.Sequential(*(
            block(c_first if i == 0 else c_out, c_out, expand, stride if i == 0 else 1) for i in range(n)
        )))
    layers.append(conv_bn(EFFNET_V2_S_STAGES[-1][4], FEATURES, 1))
    return nn.Sequential(*layers)


class EffNetEncoder(nn.Module):
    """Preprocessed pixels (B, 3, H, W) → Stage C latent (B, 16, h, w), the Würstchen semantic compressor.

    `mapper` = 1×1 conv 1280 → c_latent without bias, then BatchNorm2d(c_latent, affine=False),
    i.e. (y − running_mean) / sqrt(running_var + 1e-5) in eval form.
    """

    def __init__(self, config: EffNetConfig = EffNetConfig()):
        super().__init__()
        self.config = config
        self.backbone = efficientnet_v2_s_features()
        self.mapper = nn.Sequential(
            nn.Conv2d(FEATURES, config.c_latent, kernel_size=1, bias=False),
            nn.BatchNorm2d(config.c_latent, affine=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mapper(self.backbone(x))
