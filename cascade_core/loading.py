"""A model folder (or file) → a `CascadeModel`: find the files, check them, load them lean.

Understood (formats/, README "Model files you already have"):
- the released layout (`stabilityai/stable-cascade`): `stage_c(_lite)(_bf16).safetensors`,
  `stage_b(_lite)(_bf16).safetensors`, `stage_a.safetensors`, `previewer.safetensors`,
  `text_encoder/`, `tokenizer/`; each network's size is detected from its tensor shapes;
- a folder with a `cascade.json` giving each network's constructor args (official names)
  and file names, like ../shared/reference/pipeline/tiny-cascade;
- diffusers' layout (`prior/`, `decoder/`, `vqgan/`), single-file fine-tunes in the released or
  ComfyUI naming, and ComfyUI's single-file checkpoints, each converted once on load.
Networks are built on the meta device and their memory-mapped safetensors are assigned,
cast once and placed straight on the target device. Pickles are never loaded.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

import torch

from . import hub, memory, runtime
from .config import STAGES
from .devices import resolve_device, resolve_dtype, supports_bfloat16
from .errors import ModelLoadError, first_line
from .extras import folder_extras
from .lora import Loras
from .model import CascadeModel, LoadedNetwork
from .formats import clip_text, sources
from .formats.sources import ModelSources, TextSource
from .models.latent_sketch import LatentSketch
from .offload import Placement
from .options import EngineOptions
from .text import TextEncoder
from .units import format_bytes
from .weights import NetworkFile, load_network

log = logging.getLogger(__name__)
Progress = Callable[[str], None]

def locate(folder: Path, variant: str = "auto", dtype: torch.dtype = torch.float32) -> dict[str, NetworkFile | None]:
    """The file and config of each network of a model folder (or file); raises ModelLoadError. The previewer
    is None when the folder has none (`sources.find` then takes stabilityai/stable-cascade's or a stand-in)."""
    return sources.locate(sources.Place(folder), variant, dtype, {})


def load_text_encoder(text: TextSource, device: torch.device, dtype: torch.dtype, run_on: torch.device) -> TextEncoder:
    """The tokenizer and CLIP text model (a transformers folder's, or a bundle's tensors); weights on `device`,
    tokens sent to `run_on`."""
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer

    text_dir, tokenizer_dir = text.config, text.tokenizer
    for needed in (text_dir, tokenizer_dir):
        if not needed.is_dir():
            raise ModelLoadError(f"{needed} is missing: a model folder needs text_encoder/ and tokenizer/")
    bf16_file = (text_dir / "model.bf16.safetensors").is_file()
    try:
        tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir)
        if text.plan is not None:
            model = clip_text.load(text.plan, text_dir, text.label, device, dtype)
        else:
            model = CLIPTextModelWithProjection.from_pretrained(
                text_dir, dtype=dtype, use_safetensors=True,
                variant="bf16" if dtype == torch.bfloat16 and bf16_file else None,
            )
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{text_dir} could not be loaded ({e}); delete it and fetch it again") from e
    return TextEncoder(tokenizer, model.to(device).eval(), run_on)


def load(source: str | Path = hub.REPO, *, progress: Progress | None = None, **options) -> CascadeModel:
    """`load(folder_or_repo, device=..., dtype=..., …)`: `load_with` of `EngineOptions(model=source, **options)`."""
    return load_with(EngineOptions(model=str(source), **options), progress)


def load_with(options: EngineOptions, progress: Progress | None = None) -> CascadeModel:
    """Load a model folder, or a hub repository (downloaded into the HF cache), onto a device.

    The options (options.py) say which variant (auto: the largest that fits the device's memory),
    device and dtype (float16: Stage C keeps bfloat16 unless force_float16, its activations
    overflow), offload mode (README, "Memory"), downloaded weights and compile mode.
    progress: receives one line per step (download, each network, the summary).
    """
    say = progress or (lambda message: None)
    try:
        device = resolve_device(options.device)
        dtypes = stage_dtypes(resolve_dtype(options.dtype, device), device, options.force_float16, say)
    except ValueError as e:
        raise ModelLoadError(str(e)) from e
    offload, variant = options.offload, options.variant
    if offload != "none" and device.type == "cpu":
        say(f"offload {offload} has no effect on the CPU, where every network already is in host memory")
        offload = "none"
    from_hub = hub.is_repo_id(options.model)
    if from_hub:
        if variant == "auto":
            variant = memory.choose_variant(device, dtypes["stage_c"], offload)
            say(f"variant {variant}: {memory.describe_choice(device, dtypes['stage_c'], offload)}")
        given = tuple(stage for stage in sources.OVERRIDES if getattr(options, stage))  # not downloaded
        folder = hub.fetch(options.model, variant=variant, weights=options.weights, revision=options.revision,
                           skip=given, progress=say)
    else:
        folder = Path(options.model).expanduser()
    try:
        found = sources.find(folder, variant=variant, dtype=dtypes["stage_c"], stage_c=options.stage_c,
                             stage_b=options.stage_b, say=say)
        for note in found.notes:
            say(note)
        files = found.networks
        memory.check_fits(planned_bytes(found, dtypes), device, offload, files["stage_c"].size)
        networks, text_encoder, report = _load_all(found, dtypes, device, offload, say)
    except ModelLoadError as e:
        if from_hub:
            raise ModelLoadError(f"{e} (in the Hugging Face cache: `python -m cascade_core download --model "
                                 f"{options.model} --variant {variant} --force` fetches it again)") from e
        raise
    size = files["stage_c"].size if files["stage_c"].size == files["stage_b"].size else "custom"
    say(f"loaded in {sum(item.seconds for item in report):.1f} s on {device}, "
        f"{format_bytes(sum(item.bytes for item in report))} of weights")
    applied = runtime.apply(networks, device, compile=options.compile)
    placement = Placement({"text_encoder": text_encoder.model, **networks}, device, offload)
    return CascadeModel(
        name=options.model if from_hub else found.name, **networks, text_encoder=text_encoder,
        device=device, dtype=dtypes["stage_c"], variant=size, load_report=tuple(report), placement=placement,
        runtime=applied, extras=folder_extras(found.folder, device, dtypes["stage_b"], say), loras=Loras(options.lora_dir),
    )


def stage_dtypes(dtype: torch.dtype, device: torch.device, force_float16: bool, say: Progress) -> dict[str, torch.dtype]:
    """The dtype of each network. float16 is safe for the text encoder, Stage B, Stage A and the
    previewer; Stage C's activations overflow in it, so it gets bfloat16 (or float32) unless forced."""
    dtypes = {stage: dtype for stage in ("text_encoder", *STAGES)}
    if dtype == torch.float16 and not force_float16:
        dtypes["stage_c"] = torch.bfloat16 if supports_bfloat16(device) else torch.float32
        say(f"Stage C runs in {str(dtypes['stage_c']).removeprefix('torch.')}, not float16: its activations "
            "overflow in float16 (force_float16 / --force-float16 overrides this)")
    return dtypes


def _load_all(found: ModelSources, dtypes: dict[str, torch.dtype], device: torch.device, offload: str,
              say: Progress):
    """Every network and the text encoder, in their dtypes: on `device`, or in host memory to be offloaded.
    A previewer that is nowhere (None) is stood in for by the latent sketch (models/latent_sketch.py)."""
    home = device if offload == "none" else torch.device("cpu")
    networks, report = {}, []
    try:
        for stage, file in found.networks.items():
            start = time.perf_counter()
            if file is None:
                networks[stage] = LatentSketch().to(home, dtypes[stage])
                report.append(_loaded(stage, "sketch", "no file", start, networks[stage], say))
                continue
            networks[stage] = load_network(file, home, dtypes[stage])
            report.append(_loaded(stage, file.size, file.path.name, start, networks[stage], say))
        start = time.perf_counter()
        text_encoder = load_text_encoder(found.text, home, dtypes["text_encoder"], device)
        report.append(_loaded("text_encoder", "", found.text.label, start, text_encoder.model, say))
    except torch.OutOfMemoryError as e:
        raise ModelLoadError(
            f"out of memory on {home} while loading ({first_line(e)}). Try --variant lite, --offload model or "
            "--offload sequential, or close what else uses the memory.") from e
    return networks, text_encoder, report


def planned_bytes(found: ModelSources, dtypes: dict[str, torch.dtype]) -> dict[str, int]:
    """Weight bytes each network will take in its dtype, from the file headers and the text encoder config."""
    sizes = {stage: memory.config_bytes(file.config, dtypes[stage]) if file else 0
             for stage, file in found.networks.items()}
    config = clip_text.text_config(found.text.config)
    return {**sizes, "text_encoder": memory.clip_text_bytes(config, dtypes["text_encoder"])}


def _loaded(stage: str, size: str, name: str, start: float, net: torch.nn.Module, say: Progress) -> LoadedNetwork:
    """Time and weight bytes of one loaded network, said as one line."""
    item = LoadedNetwork(stage, size, name, time.perf_counter() - start, memory.module_bytes(net))
    label = f"{stage} ({size})" if size else stage
    dtype = str(next(net.parameters()).dtype).removeprefix("torch.")
    say(f"loaded {label} from {name}: {format_bytes(item.bytes)} {dtype} in {item.seconds:.1f} s")
    return item
