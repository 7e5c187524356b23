"""Network architectures as frozen dataclasses with named presets.

Field names follow the constructor arguments of the official Stable Cascade modules
(`modules/stage_c.py`, `stage_b.py`, `stage_a.py`, `previewer.py`, `effnet.py`,
`controlnet.py`), so a `cascade.json`
or a checkpoint's `constructor_args` maps onto them one to one. Training-only arguments
(`dropout`) are accepted by `from_official` and dropped: the engine only runs inference.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

_TRAINING_ONLY = {"dropout"}


def _freeze(value: Any) -> Any:
    """Lists (also nested) become tuples so that configs stay hashable and immutable."""
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


@dataclass(frozen=True)
class _Config:
    @classmethod
    def from_official(cls, args: Mapping[str, Any]):
        """Build from official constructor arguments; unknown names are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(args) - names - _TRAINING_ONLY
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown constructor arguments {sorted(unknown)}")
        return cls(**{k: _freeze(v) for k, v in args.items() if k in names})


@dataclass(frozen=True)
class StageCConfig(_Config):
    """Stage C, the text-conditional prior on the 16-channel, 24×24 latent (paper §3)."""
    c_in: int = 16
    c_out: int = 16
    c_r: int = 64
    patch_size: int = 1
    c_cond: int = 2048
    c_hidden: tuple[int, ...] = (2048, 2048)
    nhead: tuple[int, ...] = (32, 32)
    blocks: tuple[tuple[int, ...], ...] = ((8, 24), (24, 8))
    block_repeat: tuple[tuple[int, ...], ...] = ((1, 1), (1, 1))
    level_config: tuple[str, ...] = ("CTA", "CTA")
    c_clip_text: int = 1280
    c_clip_text_pooled: int = 1280
    c_clip_img: int = 768
    c_clip_seq: int = 4
    kernel_size: int = 3
    self_attn: bool = True
    t_conds: tuple[str, ...] = ("sca", "crp")
    switch_level: tuple[bool, ...] = (False,)


@dataclass(frozen=True)
class StageBConfig(_Config):
    """Stage B, the decoder that diffuses Stage A latents conditioned on Stage C's output."""
    c_in: int = 4
    c_out: int = 4
    c_r: int = 64
    patch_size: int = 2
    c_cond: int = 1280
    c_hidden: tuple[int, ...] = (320, 640, 1280, 1280)
    nhead: tuple[int, ...] = (-1, -1, 20, 20)
    blocks: tuple[tuple[int, ...], ...] = ((2, 6, 28, 6), (6, 28, 6, 2))
    block_repeat: tuple[tuple[int, ...], ...] = ((1, 1, 1, 1), (3, 3, 2, 2))
    level_config: tuple[str, ...] = ("CT", "CT", "CTA", "CTA")
    c_clip: int = 1280
    c_clip_seq: int = 4
    c_effnet: int = 16
    c_pixels: int = 3
    kernel_size: int = 3
    self_attn: bool = True
    t_conds: tuple[str, ...] = ("sca",)


@dataclass(frozen=True)
class StageAConfig(_Config):
    """Stage A, the VQGAN that maps pixels to a 4-channel latent at 1/4 resolution."""
    levels: int = 2
    bottleneck_blocks: int = 12
    c_hidden: int = 384
    c_latent: int = 4
    codebook_size: int = 8192
    scale_factor: float = 0.43


@dataclass(frozen=True)
class PreviewerConfig(_Config):
    """The small convolutional decoder from a Stage C latent to an 8× larger RGB preview."""
    c_in: int = 16
    c_hidden: int = 512
    c_out: int = 3


@dataclass(frozen=True)
class EffNetConfig(_Config):
    """The EfficientNetV2-S encoder from pixels to the Stage C latent (image-to-image, super-resolution)."""
    c_latent: int = 16


CONTROLNET_BOTTLENECKS = ("effnet", "large", "simple")


@dataclass(frozen=True)
class ControlNetConfig(_Config):
    """A Stage C ControlNet: bottleneck on the control input, one projection per controlled block.

    `bottleneck_mode` is `effnet` (official default, `None` there), `large` or `simple`;
    `widths` are the `large` bottleneck's widths (first 1×1 conv, residual blocks, output),
    fixed at 16384/1024/1280 in the official code, a field here so that tests can shrink them.
    """
    c_in: int = 3
    c_proj: int = 2048
    proj_blocks: tuple[int, ...] = (0, 4, 8, 12, 51, 55, 59, 63)
    bottleneck_mode: str = "effnet"
    widths: tuple[int, int, int] = (16384, 1024, 1280)

    def __post_init__(self):
        object.__setattr__(self, "proj_blocks", tuple(self.proj_blocks))  # hashable, as from_official makes it
        object.__setattr__(self, "widths", tuple(self.widths))
        if self.bottleneck_mode not in CONTROLNET_BOTTLENECKS:
            raise ValueError(
                f"ControlNetConfig: bottleneck_mode {self.bottleneck_mode!r} not in {CONTROLNET_BOTTLENECKS}"
            )
        if not self.proj_blocks:
            raise ValueError("ControlNetConfig: proj_blocks is empty")

    @classmethod
    def from_official(cls, args: Mapping[str, Any]):
        args = dict(args)
        if args.get("bottleneck_mode", "effnet") is None:
            args["bottleneck_mode"] = "effnet"  # the official constructor's default
        return super().from_official(args)


# Named presets per network. `full` and `lite` are the released variants: the official
# defaults and the lite files' constructor_args recorded in
# ../shared/reference/checkpoint_keys/. `tiny` is the same architecture at test sizes
# (the reference's tiny-cascade), for tests and the offline demo.
PRESETS: dict[str, dict[str, _Config]] = {
    "stage_c": {
        "full": StageCConfig(),
        "lite": StageCConfig(c_cond=1536, c_hidden=(1536, 1536), nhead=(24, 24), blocks=((4, 12), (12, 4))),
        "tiny": StageCConfig(
            c_cond=64, c_hidden=(64, 64), nhead=(4, 4), blocks=((2, 2), (2, 2)),
            c_clip_text=32, c_clip_text_pooled=32, c_clip_img=24,
        ),
    },
    "stage_b": {
        "full": StageBConfig(),
        "lite": StageBConfig(
            c_hidden=(320, 576, 1152, 1152), nhead=(-1, 9, 18, 18),
            blocks=((2, 4, 14, 4), (4, 14, 4, 2)), block_repeat=((1, 1, 1, 1), (2, 2, 2, 2)),
        ),
        "tiny": StageBConfig(
            c_cond=64, c_hidden=(16, 32, 64, 64), nhead=(-1, -1, 4, 4),
            blocks=((1, 1, 2, 1), (1, 2, 1, 1)), c_clip=32,
        ),
    },
    "stage_a": {
        "full": StageAConfig(),
        "tiny": StageAConfig(bottleneck_blocks=2, c_hidden=32, codebook_size=16),
    },
    "previewer": {
        "full": PreviewerConfig(),
        "tiny": PreviewerConfig(c_hidden=32),
    },
}

STAGES = tuple(PRESETS)

# Networks outside the text-to-image pipeline (image-to-image, ControlNet), by the stem of their
# released file (layouts in checkpoint_keys/) or of their reference test file (`*_tiny`,
# extras/controlnet/controlnet.json). Kept out of PRESETS, whose stages the loader, the memory
# estimate and `check` walk.
EXTRA_PRESETS: dict[str, _Config] = {
    "effnet_encoder": EffNetConfig(),
    "controlnet_canny": ControlNetConfig(c_in=1),
    "controlnet_inpainting": ControlNetConfig(c_in=4),
    "controlnet_super_resolution": ControlNetConfig(c_in=16, bottleneck_mode="large"),
    "controlnet_canny_tiny": ControlNetConfig(c_in=1, c_proj=64, proj_blocks=(6,)),
    "controlnet_inpainting_tiny": ControlNetConfig(c_in=4, c_proj=64, proj_blocks=(2,)),
    "controlnet_simple_tiny": ControlNetConfig(
        c_in=8, c_proj=64, proj_blocks=tuple(range(8)), bottleneck_mode="simple",
    ),
    "controlnet_sr_tiny": ControlNetConfig(
        c_in=16, c_proj=64, proj_blocks=(0, 3, 4, 7), bottleneck_mode="large", widths=(64, 32, 48),
    ),
}


def preset(name: str) -> _Config:
    """The config of a named network: `stage_c`, `stage_c_lite`, `stage_b_tiny`, `previewer`, `controlnet_canny`, …"""
    if name in EXTRA_PRESETS:
        return EXTRA_PRESETS[name]
    for stage in STAGES:
        if name == stage or name.startswith(stage + "_"):
            size = name[len(stage) + 1:] or "full"
            if size in PRESETS[stage]:
                return PRESETS[stage][size]
    known = [s if size == "full" else f"{s}_{size}" for s in STAGES for size in PRESETS[s]] + list(EXTRA_PRESETS)
    raise KeyError(f"unknown network {name!r}; known: {', '.join(known)}")
