"""The engine's options, declared once: one frozen type, one `add_arguments`, one validation.

The studio (`app.py`) and every command (`generate`, `download`, `check`, `bench`) take these
flags from `EngineOptions.add_arguments` and build the type with `from_args`; `loading.load`
takes the type. A bad value raises `OptionsError` whose message names the allowed ones.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
from dataclasses import dataclass

DEFAULT_MODEL = "stabilityai/stable-cascade"
VARIANTS = ("auto", "full", "lite")
WEIGHTS = ("bf16", "fp32")
DTYPES = ("auto", "float32", "bfloat16", "float16")
OFFLOAD_MODES = ("none", "model", "sequential")
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")
LORA_DIR = "loras"
MAX_BATCH_REQUESTS = 16
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")

_HELP = {
    "model": "hub repository id (downloaded into the Hugging Face cache), model folder (released or diffusers "
             "layout, a cascade.json, or single files such as ComfyUI's checkpoints) or one .safetensors file; "
             "default $CASCADE_MODEL, else " + DEFAULT_MODEL + " (README, Model files you already have)",
    "device": "auto (CUDA, then Apple MPS, then the CPU), cpu, cuda, cuda:N or mps",
    "dtype": "auto: bfloat16 on GPUs that have it, else float32; float16 keeps Stage C in bfloat16 "
             "(it overflows) unless --force-float16",
    "variant": "auto: full when it fits the device's free memory, else lite",
    "weights": "which released files a hub download takes: bf16 (half the download) or fp32",
    "revision": "hub branch, tag or commit (default main)",
    "stage_c": "take Stage C from this file (a fine-tune, released/ComfyUI/diffusers naming, or a ComfyUI "
               "checkpoint) or diffusers folder (prior/, or stable-cascade-prior holding it) instead of --model's",
    "stage_b": "take Stage B from this file or diffusers folder (decoder/, or the repository holding it) instead "
               "of --model's",
    "offload": "model: only the running stage on the GPU; sequential: weights streamed per layer (README, Memory)",
    "compile": "torch.compile the denoising steps (faster steps after a one-time compile, cached on disk; README, Speed)",
    "force_float16": "run Stage C in float16 too (may give NaN images)",
    "cuda_graphs": "replay each denoising step from a CUDA graph captured once per image size and batch "
                   "(CUDA, --offload none; README, Speed)",
    "batch_requests": f"serve up to N requests at once, their same-size steps batched into one network call "
                      f"(1: one at a time; at most {MAX_BATCH_REQUESTS}; README, Serving many users)",
    "lora_dir": "the folder whose LoRA files a request may name without a path (README, LoRAs)",
}
_CHOICES = {"variant": VARIANTS, "weights": WEIGHTS, "dtype": DTYPES, "offload": OFFLOAD_MODES,
            "compile": COMPILE_MODES}


class OptionsError(ValueError):
    """An engine option has a value the engine does not know; the message lists the ones it does."""


@dataclass(frozen=True)
class EngineOptions:
    """Which model to load, onto what, and how it runs."""
    model: str = DEFAULT_MODEL
    device: str = "auto"
    dtype: str = "auto"
    variant: str = "auto"
    weights: str = "bf16"
    revision: str | None = None
    stage_c: str | None = None  # a file or diffusers folder that replaces the model's Stage C
    stage_b: str | None = None
    offload: str = "none"
    compile: str = "none"
    force_float16: bool = False
    lora_dir: str = LORA_DIR
    cuda_graphs: bool = False
    batch_requests: int = 1  # requests served at once by batching.Batcher (the studio's queue)

    def __post_init__(self):
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise OptionsError(f"unknown {name} {getattr(self, name)!r}; use one of {', '.join(allowed)}")
        if not _DEVICE.fullmatch(self.device):
            raise OptionsError(f"unknown device {self.device!r}; use auto, cpu, cuda, cuda:N or mps")
        if self.compile != "none" and self.offload != "none" and self.device != "cpu":
            raise OptionsError("compile needs --offload none: compiled steps keep their weights on the device")
        if self.cuda_graphs and (self.offload != "none" or self.compile == "reduce-overhead"):
            raise OptionsError("cuda-graphs needs --offload none (a graph replays fixed weight addresses) and a "
                               "--compile other than reduce-overhead (which makes its own graphs)")
        if not isinstance(self.batch_requests, int) or not 1 <= self.batch_requests <= MAX_BATCH_REQUESTS:
            raise OptionsError(f"batch-requests {self.batch_requests!r} is outside 1–{MAX_BATCH_REQUESTS}")

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None) -> None:
        """The flags of every option (or of the `only` ones), with their defaults and help."""
        for field in dataclasses.fields(EngineOptions):
            if only is not None and field.name not in only:
                continue
            flag = "--" + field.name.replace("_", "-")
            if field.type == "bool":
                parser.add_argument(flag, action="store_true", help=_HELP[field.name])
            elif field.type == "int":
                parser.add_argument(flag, type=int, default=field.default, help=_HELP[field.name])
            elif field.name == "model":
                parser.add_argument(flag, default=os.environ.get("CASCADE_MODEL", DEFAULT_MODEL), help=_HELP["model"])
            else:
                parser.add_argument(flag, default=field.default, choices=_CHOICES.get(field.name),
                                    help=_HELP[field.name])

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "EngineOptions":
        """The options from parsed flags (those `add_arguments` did not add keep their defaults)."""
        given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
        return cls(**given)
