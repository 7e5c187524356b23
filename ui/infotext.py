"""The `parameters` text of AUTOMATIC1111, Forge and SD.Next PNGs → the studio's settings.

The format (AUTOMATIC1111's modules/infotext_utils.py, create_infotext and
parse_generation_parameters), read here by our own parser:

    prompt, possibly on several lines
    Negative prompt: negative prompt, possibly on several lines
    Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 123, Size: 512x768, Lora hashes: "a: 1c2d, b: 3e4f"

The last line is a list of `key: value` pairs when it holds at least three of them (otherwise it
is still prompt); a value with a comma, colon or newline is written as a JSON string. Stable
Cascade's two stages appear as this studio's own `Decoder steps` / `Decoder CFG scale` keys
(cascade_core/images.py), or as the `Model: StableCascade …` / `Prompt:` / `Negative:` lines and
`Steps(Prior/Decoder): 20/10, CFG: 4` of the Stable Cascade extension for AUTOMATIC1111 and Forge
(DenOfEquity/StableCascade-for-webUI, create_infotext).
"""
from __future__ import annotations

import json
import re

from .imported_settings import Collector, ImportedSettings, shorten

STUDIO = "Cascade Studio"
A1111 = "AUTOMATIC1111"
FORGE = "Forge"
SD_NEXT = "SD.Next"
CASCADE_EXTENSION = "Stable Cascade extension for AUTOMATIC1111 / Forge"
A1111_STYLE = "AUTOMATIC1111-style parameters"

# key: value, the value a JSON string or anything up to the next comma (A1111's re_param, with
# parentheses allowed in keys for the extension's "Steps(Prior/Decoder)").
_PARAM = re.compile(r'\s*(\w[\w \-/()]*?)\s*:\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_SIZE = re.compile(r"^(\d+)\s*x\s*(\d+)$")
_FORGE_VERSION = re.compile(r"^f\d")  # Forge's versions read f2.0.1v1.10.1-…; A1111's v1.10.1
_CASCADE_MODEL_LINE = "Model: StableCascade"
# Keys read silently: they name the tool (or, for this studio, the one sampler and the model it ran).
_SOURCE_KEYS = {"Version", "App"}
_STUDIO_KEYS = {"Sampler", "Model"}


def parse_parameters(text: str) -> ImportedSettings:
    """The settings in a `parameters` text; what the studio has no control for is listed in the notes."""
    lines = text.strip().replace("\r\n", "\n").split("\n")
    pairs = []
    if len(_PARAM.findall(lines[-1])) >= 3:
        pairs = [(key.strip(), _unquote(value.strip())) for key, value in _PARAM.findall(lines.pop())]
    params = dict(pairs)
    extension = bool(lines) and lines[0].startswith(_CASCADE_MODEL_LINE)
    source = _source(params, extension)
    found = Collector(source)
    if extension:
        found.note(f"Models: {lines.pop(0)[len('Model: '):]}")
    prompt, negative = _prompts(lines, extension)
    found.foreign_prompt("prompt", prompt)
    found.foreign_prompt("negative_prompt", negative)
    unused = []
    for key, value in pairs:
        if not _read(found, key, value) and key not in _SOURCE_KEYS and not (source == STUDIO and key in _STUDIO_KEYS):
            unused.append(f"{key}: {shorten(value, 60) if ',' not in value else json.dumps(shorten(value, 60))}")
    if unused:
        found.note("Not used (the studio has no such setting): " + ", ".join(unused))
    return found.result()


def _prompts(lines: list[str], extension: bool) -> tuple[str, str]:
    """(prompt, negative prompt) from the lines before the parameters; each line stripped, as A1111 does."""
    markers = ("Negative prompt:", "Negative:") if extension else ("Negative prompt:",)
    prompt, negative, in_negative = [], [], False
    for k, line in enumerate(lines):
        line = line.strip()
        if extension and k == 0 and line.startswith("Prompt:"):
            line = line[len("Prompt:"):].strip()
        marker = next((m for m in markers if line.startswith(m)), None)
        if marker and not in_negative:
            in_negative, line = True, line[len(marker):].strip()
        (negative if in_negative else prompt).append(line)
    return "\n".join(prompt), "\n".join(negative)


def _read(found: Collector, key: str, value: str) -> bool:
    """Set the controls a known key gives; False for a key the studio does not use."""
    if key == "Steps":
        found.number("prior_steps", value)
    elif key in ("CFG scale", "CFG"):
        found.number("prior_guidance", value)
    elif key == "Seed":
        found.number("seed", value)
    elif key == "Size":
        size = _SIZE.match(value)
        if size:
            found.number("width", size.group(1))
            found.number("height", size.group(2))
        else:
            found.note(f"Size {shorten(value, 40)!r} is not WIDTHxHEIGHT; not used")
    elif key == "Decoder steps":
        found.number("decoder_steps", value)
    elif key == "Decoder CFG scale":
        found.number("decoder_guidance", value)
    elif key == "Steps(Prior/Decoder)":
        prior, slash, decoder = value.partition("/")
        found.number("prior_steps", prior)
        if slash:
            found.number("decoder_steps", decoder)
    else:
        return False
    return True


def _source(params: dict, extension: bool) -> str:
    version = params.get("Version", "")
    if version.startswith(STUDIO):
        return STUDIO
    if extension:
        return CASCADE_EXTENSION
    if params.get("App") == SD_NEXT:
        return SD_NEXT
    if _FORGE_VERSION.match(version):
        return FORGE
    return A1111 if version.startswith("v") else A1111_STYLE


def _unquote(value: str) -> str:
    """A JSON-quoted value (A1111's quote()) as its text; anything else as is."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            text = json.loads(value)
        except ValueError:
            return value
        return text if isinstance(text, str) else value
    return value
