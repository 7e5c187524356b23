"""The networks of Stable Cascade as plain modules whose state_dict names equal the released files.

The four of the text-to-image pipeline (Stage C, B, A, previewer) and the extras: the
EfficientNetV2-S encoder (image-to-image, super-resolution) and the ControlNets.
"""
from __future__ import annotations

from torch import nn

from ..config import (
    ControlNetConfig, EffNetConfig, PreviewerConfig, StageAConfig, StageBConfig, StageCConfig, preset,
)
from .controlnet import ControlNet
from .effnet import EffNetEncoder
from .previewer import Previewer
from .stage_a import StageA
from .stage_b import StageB
from .stage_c import StageC

NETWORKS = {
    StageCConfig: StageC, StageBConfig: StageB, StageAConfig: StageA, PreviewerConfig: Previewer,
    EffNetConfig: EffNetEncoder, ControlNetConfig: ControlNet,
}


def build(name_or_config) -> nn.Module:
    """The network of a named variant (`stage_c`, `stage_c_lite`, `stage_b_tiny`, `controlnet_canny`, …) or of a config.

    Build under `with torch.device("meta"):` to allocate nothing, then load weights with
    `load_state_dict(..., assign=True)`. The module is returned in eval mode.
    """
    config = preset(name_or_config) if isinstance(name_or_config, str) else name_or_config
    return NETWORKS[type(config)](config).eval()


__all__ = ["build", "StageC", "StageB", "StageA", "Previewer", "EffNetEncoder", "ControlNet", "NETWORKS"]
