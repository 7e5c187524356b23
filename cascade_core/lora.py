"""LoRAs for Stage C: the files a request names, merged into the model's weights for its run.

A request's `loras` are `(name, strength)` pairs; a name is a file, a file in the LoRA folder
(`--lora-dir`, default `loras/`; `.safetensors` may be left off), or `owner/repo/path.safetensors` on the
Hugging Face hub. Each file's low-rank updates (lora_files.py, both layouts) are merged into the weights
they adapt, `W = W₀ + Σ strength · scale · up @ down` summed in float32 over the LoRAs in the order of their
paths (so the order a request lists them in changes no bit), then cast once to the weight's dtype; trained
tokens go into the text encoder (lora_tokens.py). The set stays merged for the next request that asks
for the same one; another set first puts back W₀, kept bit for bit in host memory as it was before the
first merge (subtracting the update again would not give W₀'s bits back in floating point). Merged
weights cost nothing per step; README "LoRAs" has the measurements that chose this over adding the
low-rank products at every step.

Every copy of a weight is written: with `--offload model` an offloaded network's resident device copy and
its host copy, which the next stage switch would otherwise bring back unmerged. The weights change only
between runs: requests run together only when they ask for the same set (batching.py admits no other),
and `Loras.use` holds a lock while it swaps.
"""
from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from . import hub
from .errors import ModelLoadError, RequestError
from .lora_files import OFFICIAL, Binding, bind, delta, detect_layout, read_lora, train_tokens
from .lora_tokens import TokenPatch, add_tokens, is_new_token, plan_tokens, remove_tokens
from .offload import Placement
from .options import LORA_DIR
from .text import TextEncoder

log = logging.getLogger(__name__)
SUFFIX = ".safetensors"
_HUB_FILE = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+/[\w./-]+\.safetensors")


@dataclass(frozen=True)
class LoraInfo:
    """A file of the LoRA folder, for a picker: `name` is what a request gives."""
    name: str
    path: Path
    layout: str  # official or kohya; "" when `problem` says why the file cannot be used
    bytes: int
    tokens: tuple[str, ...] = ()  # the new tokens it trains, when the file or a NAME.json says
    problem: str = ""


def available(folder: Path) -> list[LoraInfo]:
    """The `.safetensors` files under `folder`, from their headers (no tensor is read); [] without a folder."""
    found = []
    for path in sorted(folder.rglob(f"*{SUFFIX}")) if folder.is_dir() else ():
        name, size = path.relative_to(folder).as_posix().removesuffix(SUFFIX), path.stat().st_size
        try:
            with safe_open(str(path), framework="pt") as f:
                names, metadata = list(f.keys()), f.metadata() or {}
        except (SafetensorError, OSError, ValueError) as e:
            found.append(LoraInfo(name, path, "", size, problem=f"not a readable safetensors file ({e})"))
            continue
        layout = detect_layout(names)
        if layout is None:
            found.append(LoraInfo(name, path, "", size, problem="not a Stage C LoRA in a known layout"))
            continue
        tokens = ()
        if layout == OFFICIAL and "embeddings.embeddings" in names:
            try:
                tokens = tuple(t for t, _ in train_tokens(path, metadata) or () if is_new_token(t))
            except ModelLoadError as e:
                found.append(LoraInfo(name, path, layout, size, problem=str(e)))
                continue
        found.append(LoraInfo(name, path, layout, size, tokens))
    return found


def resolve(name: str, folder: Path) -> Path:
    """The file a request's LoRA name means: a path, a file in `folder`, or a hub file (fetched into the
    Hugging Face cache). Raises RequestError for a name that is none of these, ModelLoadError when a hub
    download fails."""
    given = Path(name).expanduser()
    for path in (given, folder / name, folder / f"{name}{SUFFIX}"):
        if path.is_file():
            return path.resolve()
    if _HUB_FILE.fullmatch(name) and not given.exists():
        owner, repo, file = name.split("/", 2)
        return hub.fetch_file(f"{owner}/{repo}", file)
    names = sorted(p.relative_to(folder).as_posix().removesuffix(SUFFIX)
                   for p in folder.rglob(f"*{SUFFIX}")) if folder.is_dir() else []
    held = f"it holds {', '.join(names[:8])}{' …' if len(names) > 8 else ''}" if names else "it holds none"
    raise RequestError("loras", f"no LoRA {name!r}: not a file, nor in the LoRA folder {folder} ({held}), nor a "
                       "hub file owner/repo/path.safetensors")


class Loras:
    """The LoRAs merged into one model's Stage C and text encoder, and the weights they replaced."""

    def __init__(self, folder: Path | str = LORA_DIR):
        self.folder = Path(folder).expanduser()
        self._lock = threading.Lock()
        self._key: tuple = ()  # (path, mtime, size, strength) of each merged LoRA, by path
        self._originals: dict[tuple[str, str], torch.Tensor] = {}  # (network, parameter) → W₀ on the host
        self._tokens: TokenPatch | None = None

    @property
    def merged(self) -> tuple[tuple[str, float], ...]:
        """(path, strength) of every LoRA merged now."""
        return tuple((path, strength) for path, _, _, strength in self._key)

    def use(self, loras, stage_c: torch.nn.Module, text_encoder: TextEncoder,
            placement: Placement | None = None) -> tuple[str, ...]:
        """Make the networks run with exactly `loras` ((name, strength) pairs, validated by the request;
        strength 0 leaves a LoRA out); returns notices. Nothing changes when the set is the one merged.
        Raises RequestError (a name) or ModelLoadError (a file) before any weight changes."""
        chosen = sorted((resolve(name, self.folder), float(strength)) for name, strength in loras if strength != 0)
        for (path, _), (same, _) in zip(chosen, chosen[1:]):
            if path == same:
                raise RequestError("loras", f"two names mean the same file {path}: give it once, with the strengths "
                                   "added")
        key = tuple((str(path), *_stamp(path), strength) for path, strength in chosen)
        with self._lock:
            if key == self._key:
                return ()
            networks = {"stage_c": stage_c, "text_encoder": text_encoder.model}
            files = [(read_lora(path), strength) for path, strength in chosen]
            bindings = [(b, strength) for lora, strength in files for b in bind(lora, networks)]
            own = (self._tokens.tokenizer, self._tokens.embedding) if self._tokens else (
                text_encoder.tokenizer, text_encoder.model.get_input_embeddings())
            tokens, notices = plan_tokens(*own, [(lora.path, lora.tokens, strength) for lora, strength in files
                                                 if lora.tokens is not None])
            self._restore(networks, text_encoder, placement)
            try:
                self._merge(bindings, networks, placement)
                if any(b.network == "text_encoder" for b, _ in bindings):
                    text_encoder.forget()  # kept prompt embeddings were made by the text encoder's own weights
                self._tokens = add_tokens(text_encoder, tokens)
            except BaseException:
                self._restore(networks, text_encoder, placement)
                raise
            self._key = key
        log.info("LoRAs merged: %s", ", ".join(f"{Path(p).name} × {s:g}" for p, _, _, s in key) or "none")
        return notices

    @torch.no_grad()
    def _merge(self, bindings: list[tuple[Binding, float]], networks: dict, placement: Placement | None) -> None:
        groups: dict[tuple[str, str], list[tuple[Binding, float]]] = {}
        for binding, strength in bindings:
            groups.setdefault((binding.network, binding.param), []).append((binding, strength))
        for (network, name), group in groups.items():
            param = networks[network].get_parameter(name)
            self._originals[(network, name)] = param.detach().to("cpu", copy=True)
            weight = param.detach().to(torch.float32, copy=True)
            for binding, strength in group:
                rows = weight[binding.rows]
                rows += delta(binding.update, strength, rows.shape, rows.device)
            merged = weight.to(param.dtype)
            for copy in _copies(placement, network, networks[network], param):
                copy.copy_(merged)

    @torch.no_grad()
    def _restore(self, networks: dict, text_encoder: TextEncoder, placement: Placement | None) -> None:
        """W₀ back into every copy of every merged weight, and the text encoder's own tokens."""
        for (network, name), original in self._originals.items():
            param = networks[network].get_parameter(name)
            for copy in _copies(placement, network, networks[network], param):
                copy.copy_(original)
        if self._originals and any(network == "text_encoder" for network, _ in self._originals):
            text_encoder.forget()  # kept prompt embeddings were made by the merged weights
        self._originals.clear()
        if self._tokens is not None:
            remove_tokens(text_encoder, self._tokens)
            self._tokens = None
        self._key = ()


def _stamp(path: Path) -> tuple[int, int]:
    """A file's modification time and size: a LoRA file replaced on disk is merged again."""
    stat = os.stat(path)
    return stat.st_mtime_ns, stat.st_size


def _copies(placement: Placement | None, network: str, net: torch.nn.Module, param: torch.Tensor) -> list[torch.Tensor]:
    """The tensors holding a parameter's values: the one it runs with and, for a network offloaded
    between stages, the host copy the placement swaps back in (offload.Placement.host: parameters first)."""
    copies = [param.data]
    host = placement.host.get(network) if placement is not None else None
    if host:
        index = next(i for i, p in enumerate(net.parameters()) if p is param)
        if host[index].data_ptr() != param.data.data_ptr():
            copies.append(host[index])
    return copies
