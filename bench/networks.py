"""Networks with random weights of the released architectures, and their diffusers twins."""
from __future__ import annotations

import torch
from torch import nn

from cascade_core.config import StageBConfig, StageCConfig, preset
from cascade_core.demo import randomize_
from cascade_core.models import build


def random_network(name: str, dtype: torch.dtype, device: torch.device, seed: int = 0) -> nn.Module:
    """`stage_c_lite`, `stage_b`, … with random weights, built on meta and filled in place on `device`."""
    with torch.device("meta"):
        net = build(name)
    generator = torch.Generator(device).manual_seed(seed)
    return randomize_(net.to_empty(device=device), generator).to(dtype).requires_grad_(False)


def random_text_encoder(dtype: torch.dtype, device: torch.device, tokenizer_dir, seed: int = 0):
    """CLIP ViT-bigG text model with projection (the released text_encoder's sizes), random weights."""
    from transformers import AutoTokenizer, CLIPTextConfig, CLIPTextModelWithProjection

    from cascade_core.memory import BIGG_TEXT
    from cascade_core.text import TextEncoder

    with torch.device("meta"):
        model = CLIPTextModelWithProjection(CLIPTextConfig(**BIGG_TEXT))
    generator = torch.Generator(device).manual_seed(seed)
    model = randomize_(model.to_empty(device=device), generator).to(dtype).eval().requires_grad_(False)
    embeddings = model.text_model.embeddings
    embeddings.position_ids.copy_(torch.arange(embeddings.position_ids.shape[-1]))  # a buffer to_empty left unset
    return TextEncoder(AutoTokenizer.from_pretrained(tokenizer_dir), model)


_BLOCK_NAMES = {"C": "SDCascadeResBlock", "T": "SDCascadeTimestepBlock", "A": "SDCascadeAttnBlock"}


def diffusers_config(config) -> dict:
    """Our (official) constructor arguments in diffusers' StableCascadeUNet names."""
    common = dict(
        in_channels=config.c_in, out_channels=config.c_out, timestep_ratio_embedding_dim=config.c_r,
        patch_size=config.patch_size, conditioning_dim=config.c_cond, block_out_channels=config.c_hidden,
        num_attention_heads=config.nhead, down_num_layers_per_block=config.blocks[0],
        up_num_layers_per_block=config.blocks[1], down_blocks_repeat_mappers=config.block_repeat[0],
        up_blocks_repeat_mappers=config.block_repeat[1],
        block_types_per_layer=[[_BLOCK_NAMES[k] for k in level] for level in config.level_config],
        clip_seq=config.c_clip_seq, kernel_size=config.kernel_size, dropout=[0.0] * len(config.c_hidden),
        self_attn=config.self_attn, timestep_conditioning_type=config.t_conds,
    )
    if isinstance(config, StageCConfig):
        return {**common, "clip_text_in_channels": config.c_clip_text,
                "clip_text_pooled_in_channels": config.c_clip_text_pooled,
                "clip_image_in_channels": config.c_clip_img, "switch_level": config.switch_level}
    assert isinstance(config, StageBConfig)
    return {**common, "clip_text_pooled_in_channels": config.c_clip, "effnet_in_channels": config.c_effnet,
            "pixel_mapper_in_channels": config.c_pixels, "switch_level": None}


def diffusers_architecture(config) -> nn.Module:
    """diffusers' StableCascadeUNet of the same architecture, its own initialisation."""
    from diffusers.models.unets.unet_stable_cascade import StableCascadeUNet

    return StableCascadeUNet(**diffusers_config(config)).eval()


def diffusers_twin(net: nn.Module) -> nn.Module:
    """diffusers' StableCascadeUNet holding the same weights (its own single-file conversion)."""
    from diffusers.loaders.single_file_utils import convert_stable_cascade_unet_single_file_to_diffusers

    parameter = next(net.parameters())
    with torch.device("meta"):
        twin = diffusers_architecture(net.config)
    state = convert_stable_cascade_unet_single_file_to_diffusers(net.state_dict())
    twin.load_state_dict({k: v.clone() for k, v in state.items()}, strict=True, assign=True)
    return twin.to(parameter.device, parameter.dtype).eval().requires_grad_(False)


def variant_network(stage: str, variant: str) -> str:
    """`stage_c` + `lite` → `stage_c_lite`; `full` is the bare name."""
    name = stage if variant == "full" else f"{stage}_{variant}"
    preset(name)  # a KeyError naming the known ones if there is no such network
    return name
