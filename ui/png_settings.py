"""Settings read back from a PNG made by this studio, by AUTOMATIC1111 / Forge / SD.Next, or by ComfyUI.

Only the PNG's text chunks are read (Pillow's `info`, the chunks before the image data, where
all three tools write them); the pixels are never decoded. Pillow's own limits apply: pictures
over Image.MAX_IMAGE_PIXELS × 2 are refused as possible decompression bombs, a compressed text
chunk may expand to PngImagePlugin.MAX_TEXT_CHUNK and all text together to MAX_TEXT_MEMORY.
Every failure is a `PngSettingsError` whose message is for the user.

Sources, first found wins: this studio's `cascade_studio` JSON chunk (cascade_core/images.py),
ComfyUI's `prompt` / `workflow` graphs (ui/comfy_graph.py), the `parameters` text (ui/infotext.py).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import struct
import zlib

from cascade_core.images import JSON_CHUNK
from cascade_core.picture import MAX_FILE_BYTES
from PIL import Image, UnidentifiedImageError

from .comfy_graph import GraphError, parse_comfy
from .imported_settings import Collector, ImportedSettings, shorten
from .infotext import STUDIO, parse_parameters
from .markdown import md_escape

log = logging.getLogger(__name__)

MAX_CHUNK_CHARS = 8_000_000  # one text chunk; ComfyUI workflows are usually well under 1 MB
NO_SETTINGS = ("This PNG carries no generation settings: it has no Cascade Studio, AUTOMATIC1111 / Forge or "
               "ComfyUI metadata. Pictures saved again by an editor, a browser or a chat app usually lose it.")
_STUDIO_TEXTS = ("prompt", "negative_prompt", "style", "user_prompt", "user_negative_prompt")
_NUMBERS = ("width", "height", "seed", "prior_steps", "prior_guidance", "decoder_steps", "decoder_guidance")


class PngSettingsError(ValueError):
    """No settings could be read from the file; the message says why, for the user."""


def read_png_settings(path: str | os.PathLike) -> ImportedSettings:
    """The settings a PNG carries, with notes on what was not used; raises PngSettingsError."""
    chunks = _text_chunks(path)
    problems = []
    for reader in (_studio, _comfy, _parameters):
        try:
            found = reader(chunks)
        except ValueError as e:  # GraphError included
            problems.append(str(e))
            continue
        if found is not None:
            return _with_stage_note(found)
    if problems:
        raise PngSettingsError("This PNG has generation settings, but they could not be read: " + "; ".join(problems))
    raise PngSettingsError(NO_SETTINGS)


def describe(found: ImportedSettings) -> str:
    """Markdown for the page: where the settings came from, what was set, and the notes."""
    s = found.as_settings()
    parts = []
    if s.get("prompt"):
        parts.append("prompt")
    if s.get("negative_prompt"):
        parts.append("negative prompt")
    if "width" in s and "height" in s:
        parts.append(f"size {s['width']}×{s['height']}")
    if "seed" in s:
        parts.append(f"seed {s['seed']}")
    for stage, label in (("prior", "composition"), ("decoder", "detail")):
        values = [f"{s[k]:g} {unit}" for k, unit in ((f"{stage}_steps", "steps"), (f"{stage}_guidance", "guidance"))
                  if k in s]
        if values:
            parts.append(f"{label} {' / '.join(values)}")
    found_text = ", ".join(parts) or "nothing the studio uses"
    text = f"Settings read from this PNG, made by **{md_escape(found.source)}**: {found_text}."
    return text + "".join(f"\n- {md_escape(note)}" for note in found.notes)


def _text_chunks(path) -> dict[str, str]:
    """The PNG's text chunks before the image data; PngSettingsError for anything but a readable PNG."""
    try:
        size = os.stat(path).st_size
    except (OSError, TypeError, ValueError) as e:
        raise PngSettingsError(f"The file could not be read ({getattr(e, 'strerror', None) or e}).") from None
    if size > MAX_FILE_BYTES:
        raise PngSettingsError(f"The file is {size / 2**20:.0f} MB; settings are read from PNGs up to "
                               f"{MAX_FILE_BYTES / 2**20:.0f} MB.")
    try:
        with Image.open(path, formats=["PNG"]) as image:
            info = dict(image.info)
    except Image.DecompressionBombError:
        raise PngSettingsError(f"This PNG has more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels, too many to open "
                               "safely; its settings were not read.") from None
    except UnidentifiedImageError:
        raise PngSettingsError("This file is not a PNG image; settings are read from PNG files only.") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as e:
        log.info("unreadable PNG %s: %s", path, e)
        raise PngSettingsError(f"This PNG is damaged or its metadata is too large to read ({shorten(e, 120)}).") \
            from None
    return {key: str(value) for key, value in info.items() if isinstance(value, str)}


def _chunk(chunks: dict, key: str) -> str | None:
    text = chunks.get(key)
    if text is not None and len(text) > MAX_CHUNK_CHARS:
        raise ValueError(f"its `{key}` text is {len(text):,} characters, more than the {MAX_CHUNK_CHARS:,} read")
    return text


def _json(chunks: dict, key: str):
    text = _chunk(chunks, key)
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"its `{key}` text is not valid JSON ({e.msg}, line {e.lineno} column {e.colno})") from None
    except RecursionError:
        raise ValueError(f"its `{key}` JSON is nested too deeply to read") from None


def _studio(chunks: dict) -> ImportedSettings | None:
    data = _json(chunks, JSON_CHUNK)
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ValueError(f"its `{JSON_CHUNK}` JSON is not an object of settings")
    found = Collector(STUDIO)
    for name in _STUDIO_TEXTS:
        found.text(name, data.get(name))
    for name in _NUMBERS:
        if data.get(name) is not None:
            found.number(name, data[name])
    loras = data.get("loras")
    for pair in loras if isinstance(loras, list) else []:
        if isinstance(pair, list) and len(pair) == 2:
            found.lora(*pair, foreign=False)
    if data.get("mode") not in (None, "text"):
        found.note(f"Made in {data['mode']} mode from a picture: only the text-to-image settings are set; "
                   "put the picture in the image panel again")
    return found.result()


def _comfy(chunks: dict) -> ImportedSettings | None:
    """The `prompt` graph, else the `workflow` graph; a studio PNG's plain `prompt` text is not JSON and skipped."""
    problem = None
    for key in ("prompt", "workflow"):
        try:
            data = _json(chunks, key)
        except ValueError as e:
            problem = problem or e
            continue
        if data is None or (key == "prompt" and not isinstance(data, dict)):
            continue
        try:
            return parse_comfy(prompt=data) if key == "prompt" else parse_comfy(workflow=data)
        except GraphError as e:
            problem = problem or e
    if problem is not None and "parameters" not in chunks:
        raise problem
    return None


def _parameters(chunks: dict) -> ImportedSettings | None:
    text = _chunk(chunks, "parameters")
    if text is None or not text.strip():
        return None
    return parse_parameters(text)


def _with_stage_note(found: ImportedSettings) -> ImportedSettings:
    """Say so when only one stage's steps and guidance were found (any tool but Stable Cascade ones)."""
    if found.decoder_steps is None and found.decoder_guidance is None and found.source != STUDIO:
        note = "No detail (Stage B) steps or guidance in this file: those controls keep their values"
        return dataclasses.replace(found, notes=found.notes + (note,))
    return found
