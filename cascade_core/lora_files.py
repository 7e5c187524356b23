"""LoRA files for Stage C: read either layout into one form, and bind it to a model's parameters.

Two layouts are understood, told apart by their tensor names (../shared/reference README, "extras/lora"):

- **official** (`train/train_c_lora.py`, `modules/lora.py`): `weights.N.lora_down` (rank × in) and
  `weights.N.lora_up` (out × rank), N in the order `apply_lora` meets the parameters it adapts (filters
  `['.attn']`: every attention block's `out_proj.weight`, then its `in_proj_weight`), scale `alpha/rank`
  with alpha 1; `embeddings.embeddings` / `embeddings.indices`, the trained token rows (`ReToken`).
  A weight with more than two dimensions gets the product reshaped to out×in×1×1, broadcast over the kernel.
- **kohya** (as ComfyUI loads Stable Cascade LoRAs, comfy/lora.py `model_lora_keys_unet`):
  `<module>.lora_down.weight`, `<module>.lora_up.weight` and an optional `<module>.alpha` (PEFT's
  `lora_A`/`lora_B` too), where `<module>` is `lora_prior_unet_<path>` or `lora_unet_<path>` (the Stage C
  parameter path without `.weight`, dots → underscores), `diffusion_model.<path>` (dots kept), or
  `lora_prior_te_<path>` / `lora_te_<path>` for the text encoder's parameters. ComfyUI splits each
  packed attention projection `in_proj_weight` into `to_q`, `to_k`, `to_v` (rows [0:C], [C:2C], [2C:3C]).
  Scale `alpha/rank` (1 without an alpha), rank = `lora_down`'s rows.

`W += strength · scale · up @ down` in both (the product reshaped to the weight's shape).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from .errors import ModelLoadError

OFFICIAL, KOHYA = "official", "kohya"
OFFICIAL_FILTER = ".attn"  # configs/training/lora_c_3b.yaml module_filters, the released LoRA's
_OFFICIAL_NAME = re.compile(r"embeddings\.(embeddings|indices)|weights\.(\d+)\.lora_(down|up)")
_KOHYA_PART = re.compile(r"(?P<module>.+?)\.(?P<part>lora_down\.weight|lora_up\.weight|lora_A\.weight|lora_B\.weight"
                         r"|alpha)")
_PARTS = {"lora_down.weight": "down", "lora_A.weight": "down", "lora_up.weight": "up", "lora_B.weight": "up",
          "alpha": "alpha"}
# Module-name prefixes (comfy/lora.py) → the network they adapt and whether the path keeps its dots.
_PREFIXES = (("lora_prior_unet_", "stage_c", False), ("lora_unet_", "stage_c", False),
             ("diffusion_model.", "stage_c", True), ("lora_prior_te_", "text_encoder", False),
             ("lora_te_", "text_encoder", False))
_QKV = ("to_q", "to_k", "to_v")
# The official config names the trained tokens; its released file does not hold them
# (configs/inference/lora_c_3b.yaml: train_tokens for models/lora_fernando_10k.safetensors).
RELEASED_TOKENS = {"lora_fernando_10k.safetensors": (("[fernando]", "^dog</w>"),)}


@dataclass(frozen=True)
class LowRank:
    """One low-rank update: `scale · up @ down` (up: out × rank, down: rank × in…)."""
    name: str  # where it is in the file: `weights.3`, or a kohya module name
    down: torch.Tensor
    up: torch.Tensor
    scale: float


@dataclass(frozen=True)
class TrainedTokens:
    """The official `ReToken`: `embeddings[i]` is added to token row `indices[i]`. Rows at or past the
    tokenizer's size are new tokens, named (in order) by the bracketed entries of `train_tokens`:
    `[token, aggregate regex]` pairs as in the official config; None when the file does not say."""
    embeddings: torch.Tensor  # (n, width)
    indices: tuple[int, ...]
    train_tokens: tuple[tuple[str, str | None], ...] | None


@dataclass(frozen=True)
class LoraFile:
    path: Path
    layout: str  # OFFICIAL or KOHYA
    updates: tuple[LowRank, ...]  # official: in file order (N); kohya: by module name
    tokens: TrainedTokens | None = None


@dataclass(frozen=True)
class Binding:
    """A low-rank update bound to a parameter of a network: `param[rows] += strength · update`."""
    network: str  # stage_c or text_encoder
    param: str
    rows: slice
    update: LowRank


def detect_layout(names) -> str | None:
    """OFFICIAL, KOHYA or None, from the tensor names alone."""
    names = list(names)
    if names and all(_OFFICIAL_NAME.fullmatch(n) for n in names) and any(n.startswith("weights.") for n in names):
        return OFFICIAL
    if names and all(_KOHYA_PART.fullmatch(n) for n in names) and all(
            n.startswith(tuple(p for p, _, _ in _PREFIXES)) for n in names):
        return KOHYA
    return None


def read_lora(path: Path) -> LoraFile:
    """Every tensor of a LoRA file, in the layout its names show. Raises ModelLoadError naming the file."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            tensors = {name: f.get_tensor(name) for name in f.keys()}
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ModelLoadError(f"{path} is not a readable safetensors file ({e}); it may be cut short: download "
                             "it again") from e
    layout = detect_layout(tensors)
    if layout is None:
        sample = ", ".join(sorted(tensors)[:3]) or "no tensors"
        raise ModelLoadError(
            f"{path} is not a Stage C LoRA in a layout this engine knows (it holds {sample}). Expected the official "
            "one (weights.N.lora_down / weights.N.lora_up, embeddings.embeddings / embeddings.indices) or ComfyUI's "
            "(lora_prior_unet_<path>.lora_down.weight / .lora_up.weight / .alpha)")
    if layout == OFFICIAL:
        return LoraFile(path, OFFICIAL, _official_updates(path, tensors), _tokens(path, tensors, metadata))
    return LoraFile(path, KOHYA, _kohya_updates(path, tensors))


def _official_updates(path: Path, tensors: dict) -> tuple[LowRank, ...]:
    count = 1 + max(int(m.group(2)) for m in map(_OFFICIAL_NAME.fullmatch, tensors) if m.group(2))
    updates = []
    for n in range(count):
        down, up = tensors.get(f"weights.{n}.lora_down"), tensors.get(f"weights.{n}.lora_up")
        if down is None or up is None:
            raise ModelLoadError(f"{path} lacks weights.{n}.lora_{'down' if down is None else 'up'}: an official "
                                 f"LoRA holds both halves of every weights.N, N from 0 to {count - 1}")
        updates.append(LowRank(f"weights.{n}", down, up, 1.0 / down.shape[0]))  # alpha 1 (modules/lora.py)
    return tuple(updates)


def _tokens(path: Path, tensors: dict, metadata: dict) -> TrainedTokens | None:
    if "embeddings.embeddings" not in tensors:
        return None
    embeddings, indices = tensors["embeddings.embeddings"], tensors.get("embeddings.indices")
    if indices is None or embeddings.dim() != 2 or indices.shape != (embeddings.shape[0],):
        raise ModelLoadError(f"{path}: embeddings.indices must hold one token id per row of embeddings.embeddings "
                             f"({tuple(embeddings.shape)})")
    return TrainedTokens(embeddings, tuple(int(i) for i in indices), train_tokens(path, metadata))


def train_tokens(path: Path, metadata: dict) -> tuple[tuple[str, str | None], ...] | None:
    """The official config's `train_tokens` of a LoRA: from the file's metadata (`train_tokens`, JSON), a
    `NAME.json` beside it (`{"train_tokens": [["[token]", "^aggregate regex"], …]}`), or the released file's
    config; None when nothing says."""
    sidecar = path.with_suffix(".json")
    if "train_tokens" in metadata:
        source, text = f"{path}'s metadata", metadata["train_tokens"]
    elif sidecar.is_file():
        source, text = str(sidecar), None
        try:
            text = json.dumps(json.loads(sidecar.read_text()).get("train_tokens"))
        except (OSError, ValueError, AttributeError) as e:
            raise ModelLoadError(f"{sidecar} is not JSON with a train_tokens list ({e})") from e
    else:
        return RELEASED_TOKENS.get(path.name)
    try:
        pairs = json.loads(text)
        tokens = tuple((str(token), None if aggregate is None else str(aggregate)) for token, aggregate in pairs)
        for _, aggregate in tokens:
            if aggregate is not None:
                re.compile(aggregate)
    except (ValueError, TypeError, re.error) as e:
        raise ModelLoadError(f"{source}: train_tokens must be a list of [token, aggregate regex or null] pairs, as in "
                             f"the official config ({e})") from e
    return tokens


def _kohya_updates(path: Path, tensors: dict) -> tuple[LowRank, ...]:
    modules: dict[str, dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        match = _KOHYA_PART.fullmatch(name)
        modules.setdefault(match["module"], {})[_PARTS[match["part"]]] = tensor
    updates = []
    for module, parts in modules.items():
        if "down" not in parts or "up" not in parts:
            raise ModelLoadError(f"{path} has {module}'s lora_{'down' if 'down' not in parts else 'up'} without its "
                                 "other half")
        rank = parts["down"].shape[0]
        alpha = float(parts["alpha"]) if "alpha" in parts else float(rank)  # no alpha: scale 1 (comfy/lora.py)
        updates.append(LowRank(module, parts["down"], parts["up"], alpha / rank))
    return tuple(updates)


def official_targets(net: torch.nn.Module) -> list[str]:
    """The parameters official `apply_lora(net, ['.attn'])` adapts, in the order of the file's `weights.N`:
    each module whose name contains the filter, on its `weight` or else its `in_proj_weight`, a module's
    children before itself (so an attention block's out_proj comes before its in_proj)."""
    targets = []

    def visit(module: torch.nn.Module, prefix: str) -> None:
        for name, child in module.named_children():
            visit(child, f"{prefix}{name}.")
        name = prefix[:-1]
        if OFFICIAL_FILTER in name:
            own = dict(module.named_parameters(recurse=False))
            param = "weight" if "weight" in own else "in_proj_weight" if "in_proj_weight" in own else None
            if param is not None:
                targets.append(f"{name}.{param}")

    visit(net, "")
    return targets


def kohya_names(network: str, net: torch.nn.Module) -> dict[str, tuple[str, slice]]:
    """Kohya/ComfyUI module names (every prefix of `_PREFIXES` for `network`) → (parameter, rows)."""
    shapes = {name: p.shape for name, p in net.named_parameters()}
    paths: dict[str, tuple[str, slice]] = {}
    for name, shape in shapes.items():
        if name.endswith(".weight"):
            paths[name.removesuffix(".weight")] = (name, slice(None))
        elif name.endswith(".in_proj_weight"):  # ComfyUI's q, k, v split of the packed projection
            module, c = name.removesuffix(".in_proj_weight"), shape[0] // 3
            for k, part in enumerate(_QKV):
                paths[f"{module}.{part}"] = (name, slice(k * c, (k + 1) * c))
    names = {}
    for prefix, target, dotted in _PREFIXES:
        if target == network:
            names.update({prefix + (path if dotted else path.replace(".", "_")): where
                          for path, where in paths.items()})
    return names


def bind(lora: LoraFile, networks: dict[str, torch.nn.Module]) -> list[Binding]:
    """The file's updates bound to `networks` (stage_c, text_encoder); raises ModelLoadError when the file was
    made for another network (other names, counts or shapes)."""
    if lora.layout == OFFICIAL:
        targets = official_targets(networks["stage_c"])
        if len(targets) != len(lora.updates):
            raise ModelLoadError(
                f"{lora.path} holds {len(lora.updates)} LoRA weights; this model's Stage C has {len(targets)} "
                f"attention projections to adapt (filters ['{OFFICIAL_FILTER}'], two per attention block): the file "
                "was made for another Stage C (full or lite)")
        bindings = [Binding("stage_c", t, slice(None), u) for t, u in zip(targets, lora.updates)]
    else:
        names = {n: ("stage_c", *where) for n, where in kohya_names("stage_c", networks["stage_c"]).items()}
        names.update({n: ("text_encoder", *where) for n, where in
                      kohya_names("text_encoder", networks["text_encoder"]).items()})
        unknown = [u.name for u in lora.updates if u.name not in names]
        if unknown:
            more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
            raise ModelLoadError(f"{lora.path}: {', '.join(unknown[:3])}{more} name no parameter of this model's "
                                 "Stage C or text encoder: the file was made for another network")
        bindings = [Binding(*names[u.name], u) for u in lora.updates]
    for b in bindings:
        _check_shape(lora.path, b, networks[b.network].get_parameter(b.param))
    return bindings


def _check_shape(path: Path, b: Binding, param: torch.Tensor) -> None:
    target = param[b.rows].shape
    down, up = b.update.down, b.update.up
    fits = up.dim() >= 2 and down.dim() >= 2 and up.shape[1] == down.shape[0] and up.shape[0] == target[0] and (
        down[0].numel() == target[1:].numel() or (len(target) > 2 and down[0].numel() == target[1]))
    if not fits:
        raise ModelLoadError(
            f"{path}: {b.update.name} (up {list(up.shape)}, down {list(down.shape)}) does not fit {b.network} "
            f"{b.param} {list(target)}: the file was made for another network (a Stage C of another width: full "
            "is 2048 wide, lite 1536)")


def delta(update: LowRank, strength: float, shape: torch.Size, device: torch.device) -> torch.Tensor:
    """`(up @ down) · (scale · strength)` in float32 on `device` (at strength 1 the official arithmetic),
    reshaped to the weight's `shape` (or out×in×1×1, broadcast over a kernel, for an official LoRA on a
    convolution)."""
    up = update.up.to(device, torch.float32).flatten(1)  # (out, rank)
    down = update.down.to(device, torch.float32).flatten(1)  # (rank, in…)
    product = torch.matmul(up, down)  # (out, in…)
    if product.numel() == shape.numel():
        product = product.view(shape)
    else:
        product = product.view(*product.shape, *[1] * (len(shape) - 2))  # (out, in, 1, 1)
    return product.mul_(update.scale * strength)
