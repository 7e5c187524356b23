"""A model folder → a `CascadeModel`: find the files, check them, load them lean.

Two layouts are understood:
- the released one (`stabilityai/stable-cascade`): `stage_c(_lite)(_bf16).safetensors`,
  `stage_b(_lite)(_bf16).safetensors`, `stage_a.safetensors`, `previewer.safetensors`,
  `text_encoder/`, `tokenizer/`; each network's size is detected from its tensor shapes;
- a folder with a `cascade.json` giving each network's constructor args (official names)
  and file names, like ../shared/reference/pipeline/tiny-cascade.
Networks are built on the meta device and their memory-mapped safetensors are assigned,
cast once and placed straight on the target device. Pickles are never loaded.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable

import torch

from . import hub, memory, runtime
from .config import PRESETS, STAGES
from .devices import resolve_device, resolve_dtype, supports_bfloat16
from .errors import ModelLoadError, first_line
from .extras import folder_extras
from .model import CascadeModel, LoadedNetwork
from .models.layouts import expected_layout
from .offload import Placement
from .options import EngineOptions
from .released import RELEASED_FILES, TEXT_ENCODER_DIR, TOKENIZER_DIR, released_names
from .text import TextEncoder
from .units import format_bytes
from .weights import NetworkFile, layout_problems, load_network, read_layout

log = logging.getLogger(__name__)
Progress = Callable[[str], None]

def detect_size(stage: str, path: Path) -> NetworkFile:
    """Which released size of `stage` a file holds, from its tensor shapes."""
    found = read_layout(path)
    problems = {}
    for size, config in PRESETS[stage].items():
        problems[size] = layout_problems(found, expected_layout(config))
        if not problems[size]:
            return NetworkFile(stage, config, path, size)
    nearest = min(problems, key=lambda size: _mismatches(found, expected_layout(PRESETS[stage][size])))
    raise ModelLoadError(
        f"{path.name} does not hold a {stage} network of any known size; nearest is {nearest}: "
        + "; ".join(problems[nearest]) + ". Delete the file and fetch it again."
    )


def _mismatches(found: dict, expected: dict) -> int:
    return len(found.keys() ^ expected.keys()) + sum(found[k] != v for k, v in expected.items() if k in found)


def find_released(folder: Path, stage: str, variant: str, dtype: torch.dtype) -> NetworkFile:
    sizes = RELEASED_FILES[stage]
    preference = {"auto": ["full", "lite"], "full": ["full"], "lite": ["lite"]}[variant]
    order = [size for size in preference if size in sizes] or list(sizes)  # Stage A, previewer: one size
    prefer = "bf16" if dtype == torch.bfloat16 else "fp32"
    for size in order:
        for name in released_names(stage, size, prefer):
            if (folder / name).is_file():
                return detect_size(stage, folder / name)
    wanted = " or ".join(n for s in order for n in released_names(stage, s))
    raise ModelLoadError(f"{folder} has no {wanted}; download it into the folder (or point --model at the right one)")


def find_custom(folder: Path, spec: dict, stage: str) -> NetworkFile:
    """A network described by cascade.json: its constructor args and file name."""
    config_class = type(PRESETS[stage]["full"])
    try:
        config = config_class.from_official(spec[stage])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelLoadError(f"{folder / 'cascade.json'}: bad or missing {stage!r} entry ({e})") from e
    path = folder / spec.get("files", {}).get(stage, f"{stage}.safetensors")
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing; cascade.json names it for {stage}")
    problems = layout_problems(read_layout(path), expected_layout(config))
    if problems:
        raise ModelLoadError(f"{path.name} does not match the {stage} arguments in cascade.json: " + "; ".join(problems))
    size = next((s for s, c in PRESETS[stage].items() if c == config), "custom")
    return NetworkFile(stage, config, path, size)


def locate(folder: Path, variant: str = "auto", dtype: torch.dtype = torch.float32) -> dict[str, NetworkFile]:
    """The file and config of each network in a model folder; raises ModelLoadError."""
    if not folder.is_dir():
        raise ModelLoadError(f"{folder} is not a folder with a Stable Cascade model, nor a Hugging Face repository id "
                             "(owner/name)")
    spec_path = folder / "cascade.json"
    if spec_path.is_file():
        try:
            spec = json.loads(spec_path.read_text())
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"{spec_path} is not valid JSON ({e})") from e
        return {stage: find_custom(folder, spec, stage) for stage in STAGES}
    return {stage: find_released(folder, stage, variant, dtype) for stage in STAGES}


def load_text_encoder(folder: Path, device: torch.device, dtype: torch.dtype, run_on: torch.device) -> TextEncoder:
    """The tokenizer and CLIP text model; weights on `device`, tokens sent to `run_on`."""
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer

    text_dir, tokenizer_dir = folder / TEXT_ENCODER_DIR, folder / TOKENIZER_DIR
    for needed in (text_dir, tokenizer_dir):
        if not needed.is_dir():
            raise ModelLoadError(f"{needed} is missing: a model folder needs text_encoder/ and tokenizer/")
    bf16_file = (text_dir / "model.bf16.safetensors").is_file()
    try:
        tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir)
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
        folder = hub.fetch(options.model, variant=variant, weights=options.weights, revision=options.revision,
                           progress=say)
    else:
        folder = Path(options.model).expanduser()
    try:
        files = locate(folder, variant, dtypes["stage_c"])
        memory.check_fits(planned_bytes(folder, files, dtypes), device, offload, files["stage_c"].size)
        networks, text_encoder, report = _load_all(folder, files, dtypes, device, offload, say)
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
        name=options.model if from_hub else folder.resolve().name, **networks, text_encoder=text_encoder,
        device=device, dtype=dtypes["stage_c"], variant=size, load_report=tuple(report), placement=placement,
        runtime=applied, extras=folder_extras(folder, device, dtypes["stage_b"], say),
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


def _load_all(folder: Path, files: dict[str, NetworkFile], dtypes: dict[str, torch.dtype], device: torch.device,
              offload: str, say: Progress):
    """Every network and the text encoder, in their dtypes: on `device`, or in host memory to be offloaded."""
    home = device if offload == "none" else torch.device("cpu")
    networks, report = {}, []
    try:
        for stage, file in files.items():
            start = time.perf_counter()
            networks[stage] = load_network(file, home, dtypes[stage])
            report.append(_loaded(stage, file.size, file.path.name, start, networks[stage], say))
        start = time.perf_counter()
        text_encoder = load_text_encoder(folder, home, dtypes["text_encoder"], device)
        report.append(_loaded("text_encoder", "", "text_encoder/", start, text_encoder.model, say))
    except torch.OutOfMemoryError as e:
        raise ModelLoadError(
            f"out of memory on {home} while loading ({first_line(e)}). Try --variant lite, --offload model or "
            "--offload sequential, or close what else uses the memory.") from e
    return networks, text_encoder, report


def planned_bytes(folder: Path, files: dict[str, NetworkFile], dtypes: dict[str, torch.dtype]) -> dict[str, int]:
    """Weight bytes each network will take in its dtype, from the file headers and the text encoder config."""
    from transformers import CLIPTextConfig

    sizes = {stage: memory.config_bytes(file.config, dtypes[stage]) for stage, file in files.items()}
    try:
        config = CLIPTextConfig.from_pretrained(folder / TEXT_ENCODER_DIR)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{folder / TEXT_ENCODER_DIR / 'config.json'} is missing or unreadable ({e})") from e
    return {**sizes, "text_encoder": memory.clip_text_bytes(config, dtypes["text_encoder"])}


def _loaded(stage: str, size: str, name: str, start: float, net: torch.nn.Module, say: Progress) -> LoadedNetwork:
    """Time and weight bytes of one loaded network, said as one line."""
    item = LoadedNetwork(stage, size, name, time.perf_counter() - start, memory.module_bytes(net))
    label = f"{stage} ({size})" if size else stage
    dtype = str(next(net.parameters()).dtype).removeprefix("torch.")
    say(f"loaded {label} from {name}: {format_bytes(item.bytes)} {dtype} in {item.seconds:.1f} s")
    return item
