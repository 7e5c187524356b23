"""A tiny Stable Cascade with random weights, made in memory: no files, no download.

Its images are noise. It exists so that the studio and its tests run anywhere in seconds.
Weights come from a seeded generator, so every demo model is the same.
"""
from __future__ import annotations

import torch
from torch import nn

from .config import EXTRA_PRESETS, PRESETS
from . import runtime
from .devices import resolve_device
from .extras import Extras
from .model import CascadeModel
from .models import build
from .text import TextEncoder

DEMO_SEED = 2024
VOCAB = ["<|startoftext|>", "<|endoftext|>", "!", "[UNK]"]


def randomize_(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Fill every floating tensor in place from `generator`: weights ~ N(0, 1/fan_in), norm scales 1,
    biases small, batch-norm statistics neutral."""
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_mean"):
                tensor.zero_()
            elif name.endswith("running_var") or (tensor.dim() == 1 and name.endswith("weight")):
                tensor.fill_(1.0)
            elif tensor.dim() == 1:
                tensor.normal_(0, 0.02, generator=generator)
            else:
                tensor.normal_(0, tensor[0].numel() ** -0.5, generator=generator)
    return module


def _demo_tokenizer():
    """A word-level tokenizer with CLIP's special tokens; unknown words share one id."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = "a an the of in on with and photo photograph painting portrait red fox snow cat dog city night".split()
    vocab = {token: i for i, token in enumerate(VOCAB + words)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>", special_tokens=[("<|startoftext|>", 0), ("<|endoftext|>", 1)]
    )
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|startoftext|>", eos_token="<|endoftext|>",
                                   pad_token="!", unk_token="[UNK]")


def _demo_text_model(vocab_size: int, width: int, generator: torch.Generator):
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    config = CLIPTextConfig(vocab_size=vocab_size, hidden_size=width, intermediate_size=2 * width,
                            num_hidden_layers=2, num_attention_heads=4, projection_dim=width,
                            max_position_embeddings=77, pad_token_id=2, bos_token_id=0, eos_token_id=1)
    return randomize_(CLIPTextModelWithProjection(config), generator).eval()


DEMO_EXTRAS = {"effnet_encoder": "effnet_encoder", "controlnet_canny": "controlnet_canny_tiny",
               "controlnet_inpainting": "controlnet_inpainting_tiny", "controlnet_super_resolution": "controlnet_sr_tiny"}


def _demo_extras(device: torch.device, c_clip_img: int) -> Extras:
    """Random networks for every image mode, each made (from its own seed) the first time it is used."""
    def make(name: str) -> nn.Module:
        generator = torch.Generator().manual_seed(DEMO_SEED + len(name))
        if name == "image_encoder":
            from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

            config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                      image_size=224, patch_size=32, projection_dim=c_clip_img)
            net = CLIPVisionModelWithProjection(config)
        else:
            net = build(EXTRA_PRESETS[DEMO_EXTRAS[name]])
        return randomize_(net, generator).to(device).eval().requires_grad_(False)

    return Extras(make)


def load_demo(device: str = "cpu", compile: str = "none") -> CascadeModel:
    """The tiny demo model in float32 (compile: a mode of options.COMPILE_MODES)."""
    generator = torch.Generator().manual_seed(DEMO_SEED)
    torch_device = resolve_device(device)
    networks = {stage: randomize_(build(presets["tiny"]), generator).to(torch_device).requires_grad_(False)
                for stage, presets in PRESETS.items()}
    networks["previewer"].blocks[-1].bias.fill_(0.5)  # previews centred on mid-grey, not clamped to black
    tokenizer = _demo_tokenizer()
    width = PRESETS["stage_c"]["tiny"].c_clip_text
    text_model = _demo_text_model(len(tokenizer), width, generator).to(torch_device)
    applied = runtime.apply(networks, torch_device, compile=compile)
    return CascadeModel(name="demo (random weights: noise)", **networks,
                        text_encoder=TextEncoder(tokenizer, text_model),
                        device=torch_device, dtype=torch.float32, variant="tiny", runtime=applied,
                        extras=_demo_extras(torch_device, PRESETS["stage_c"]["tiny"].c_clip_img))
