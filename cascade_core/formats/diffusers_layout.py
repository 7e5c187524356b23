"""diffusers' layout: one folder per network with its config.json and (possibly sharded) weights.

`stabilityai/stable-cascade-prior` holds `prior/` (and `prior_lite/`), `stabilityai/stable-cascade`
holds `decoder/` (and `decoder_lite/`) and `vqgan/`, both `text_encoder/` and `tokenizer/` (the same
transformers folders as the released layout); `StableCascadeCombinedPipeline.save_pretrained` writes
the prior as `prior_prior/`. A network folder holds `diffusion_pytorch_model[.VARIANT].safetensors`,
or shards listed by `diffusion_pytorch_model.safetensors.index[.VARIANT].json`.

This is the inverse of diffusers' conversion (`scripts/convert_stable_cascade.py`): the config maps
`StableCascadeUNet`'s arguments (`models/unets/unet_stable_cascade.py`) and `PaellaVQModel`'s
(`pipelines/wuerstchen/modeling_paella_vq_model.py`) onto ours, and `unet.plan` joins the split
attention projections. The previewer is not part of diffusers' pipelines.
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from ..config import StageAConfig, StageBConfig, StageCConfig
from ..errors import ModelLoadError
from ..weights import NetworkFile
from . import networks
from .plan import Header, read_header

# network → variant → component folders, in the order they are looked for
COMPONENTS = {
    "stage_c": {"full": ("prior", "prior_prior"), "lite": ("prior_lite",)},
    "stage_b": {"full": ("decoder",), "lite": ("decoder_lite",)},
    "stage_a": {"full": ("vqgan",)},
}
_SINGLE = re.compile(r"diffusion_pytorch_model(?:\.(?P<variant>\w+))?\.safetensors")
_INDEX = re.compile(r"diffusion_pytorch_model\.safetensors\.index(?:\.(?P<variant>\w+))?\.json")
_BLOCKS = {"SDCascadeResBlock": "C", "SDCascadeTimestepBlock": "T", "SDCascadeAttnBlock": "A"}


def components(folder: Path, stage: str, variant: str = "auto") -> list[Path]:
    """The component folders (with a config.json) of `stage` that `variant` allows, preferred first."""
    sizes = COMPONENTS[stage]
    order = {"auto": ["full", "lite"], "full": ["full"], "lite": ["lite"]}[variant]
    names = [name for size in order if size in sizes for name in sizes[size]] or list(sizes["full"])
    return [folder / name for name in names if (folder / name / "config.json").is_file()]


def is_diffusers(folder: Path) -> bool:
    return any(components(folder, stage) for stage in COMPONENTS)


def network(stage: str, component: Path, prefer: str = "bf16") -> NetworkFile:
    """The network of one component folder: its config.json mapped onto ours, its weights checked against it."""
    label = f"{component.parent.name}/{component.name}/"
    try:
        args = json.loads((component / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{component / 'config.json'} is not readable JSON ({e})") from e
    try:
        config = vqgan_config(args) if stage == "stage_a" else unet_config(args)
    except (KeyError, TypeError, ValueError) as e:
        raise ModelLoadError(f"{component / 'config.json'} is not a Stable Cascade {stage} config ({e})") from e
    if type(config) is not {"stage_c": StageCConfig, "stage_b": StageBConfig, "stage_a": StageAConfig}[stage]:
        raise ModelLoadError(f"{component} holds a {'Stage B' if stage == 'stage_c' else 'Stage C'} network "
                             f"(by its config.json), not {stage}")
    file = networks.configured(stage, config, _header(component, prefer), component, label)
    return dataclasses.replace(file, format=f"diffusers {component.name}/")


def weight_files(component: Path, prefer: str = "bf16") -> list[Path]:
    """The safetensors files of one set of weights: the `prefer`red variant, else the plain one, else any."""
    sets: dict[str | None, list[Path]] = {}
    for path in sorted(component.iterdir()):
        if m := _INDEX.fullmatch(path.name):
            try:
                shards = sorted(set(json.loads(path.read_text())["weight_map"].values()))
            except (OSError, ValueError, KeyError, AttributeError) as e:
                raise ModelLoadError(f"{path} is not a readable index of shards ({e})") from e
            sets[m["variant"]] = [component / shard for shard in shards]
        elif (m := _SINGLE.fullmatch(path.name)) and m["variant"] not in sets:
            sets[m["variant"]] = [path]
    if not sets:
        raise ModelLoadError(f"{component} has no diffusion_pytorch_model*.safetensors (only safetensors weights "
                             "are read, never .bin archives of torch.save)")
    chosen = sets.get(prefer) or sets.get(None) or next(iter(sets.values()))
    missing = [p.name for p in chosen if not p.is_file()]
    if missing:
        raise ModelLoadError(f"{component} lacks {', '.join(missing)}, which its index lists; fetch it again")
    return chosen


def _header(component: Path, prefer: str) -> Header:
    header: Header = {}
    for path in weight_files(component, prefer):
        header.update(read_header(path))
    return header


def unet_config(args: dict) -> StageCConfig | StageBConfig:
    """`StableCascadeUNet`'s arguments → ours (diffusers' conversion script, read backwards)."""
    levels = tuple("".join(_BLOCKS[b] for b in types) for types in args["block_types_per_layer"])
    n = len(args["block_out_channels"])
    self_attn = args.get("self_attn", True)
    if not isinstance(self_attn, bool):
        if len(set(self_attn)) != 1:
            raise ValueError(f"self_attn differs between levels ({self_attn}), which Stable Cascade never does")
        self_attn = bool(self_attn[0])
    common = dict(
        c_in=args["in_channels"], c_out=args["out_channels"], c_r=args["timestep_ratio_embedding_dim"],
        patch_size=args["patch_size"], c_cond=args["conditioning_dim"], c_hidden=tuple(args["block_out_channels"]),
        nhead=tuple(h if "A" in level else -1 for h, level in zip(args["num_attention_heads"], levels)),
        blocks=(tuple(args["down_num_layers_per_block"]), tuple(args["up_num_layers_per_block"])),
        block_repeat=(tuple(args.get("down_blocks_repeat_mappers") or (1,) * n),
                      tuple(args.get("up_blocks_repeat_mappers") or (1,) * n)),
        level_config=levels, c_clip_seq=args["clip_seq"], kernel_size=args["kernel_size"], self_attn=self_attn,
        t_conds=tuple(args["timestep_conditioning_type"]),
    )
    if args.get("effnet_in_channels") is not None:  # the decoder
        if args.get("switch_level") is not None:
            raise ValueError("a decoder with switch_level (resampling 1×1 convs) is not Stage B")
        return StageBConfig(**common, c_clip=args["clip_text_pooled_in_channels"],
                            c_effnet=args["effnet_in_channels"], c_pixels=args["pixel_mapper_in_channels"])
    if args.get("switch_level") is None or args.get("clip_text_in_channels") is None:
        raise ValueError("a prior needs switch_level and clip_text_in_channels, as Stage C has them")
    return StageCConfig(**common, c_clip_text=args["clip_text_in_channels"],
                        c_clip_text_pooled=args["clip_text_pooled_in_channels"],
                        c_clip_img=args["clip_image_in_channels"], switch_level=tuple(args["switch_level"]))


def vqgan_config(args: dict) -> StageAConfig:
    """`PaellaVQModel`'s arguments → Stage A's. Its scale_factor is the one diffusers' pipeline multiplies by."""
    fixed = {"in_channels": 3, "out_channels": 3, "up_down_scale_factor": 2}
    odd = {k: args[k] for k, v in fixed.items() if args.get(k, v) != v}
    if odd:
        raise ValueError(f"{odd} differ from Stage A's fixed {fixed}")
    return StageAConfig(levels=args["levels"], bottleneck_blocks=args["bottleneck_blocks"], c_hidden=args["embed_dim"],
                        c_latent=args["latent_channels"], codebook_size=args["num_vq_embeddings"],
                        scale_factor=args["scale_factor"])
