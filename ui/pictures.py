"""Pictures into requests: the image panel's modes, the gallery's one-off actions and the API's files, each
turned into `cc.GenerationRequest` picture fields (README, "Image inputs").

Every picture is opened by the engine (`cascade_core.picture.Picture.open`), so a file that is not a picture,
is damaged or too large is refused with the engine's `RequestError`, whose message names the field and the fix.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cascade_core as cc
from cascade_core.picture import Picture
from cascade_core.request import MAX_SIZE, MIN_SIZE, REMIX_STRENGTH
from PIL import Image, ImageChops, ImageOps

# The panel's modes, in the order shown; each names what it does with the picture.
MODES = ("Remix", "Image prompt", "Edges", "Repaint", "Extend", "Upscale 2×")
CONTROLS = {"Edges": "canny", "Repaint": "inpaint", "Extend": "outpaint", "Upscale 2×": "upscale"}
STRENGTH_DEFAULTS = {"Remix": REMIX_STRENGTH, "Repaint": 1.0}  # the strength slider's value when the mode is chosen
MAP_MODES = ("Edges", "Repaint", "Extend")  # the modes whose control map (edges, mask) the run shows
DEFAULT_MODE = "Remix"
DEFAULT_MARGIN = 128
HELP = {
    "Remix": "A new image from the picture and the prompt. **Strength**: how far from the picture "
             "(0.3 keeps its layout and colours, 1 only a hint). The output has the Width × Height set below, "
             "the picture centre-cropped to it.",
    "Image prompt": "The picture's look and content guide a new image (its CLIP image embedding), with the "
                    "prompt.",
    "Edges": "The picture's edges (Canny) fix the layout; the prompt says what fills it. **Control strength**: "
             "how closely the edges are followed.",
    "Repaint": "Paint over the area to change with the brush of the **Mask** editor below (the eraser takes "
               "paint away); the rest of the picture is kept. The output has the picture's aspect.",
    "Extend": "Grows the picture by **Margin** pixels on every side and paints the new band to match.",
    "Upscale 2×": "Twice the picture's width and height, details filled in by the prompt (each side 128–1024 "
                  "px in, 256–2048 px out).",
}
VARY = {"subtle": 0.35, "strong": 0.7}  # the gallery's Vary buttons: remix strength
_ORIENTATION = 0x0112  # the EXIF tag of a photo taken sideways


@dataclass(frozen=True)
class Panel:
    """The image panel's values, as the page sends them (ui/layout.py)."""
    mode: str = DEFAULT_MODE
    picture: str | None = None  # a file path (gr.Image, type="filepath")
    editor: dict | None = None  # gr.ImageEditor (type="pil"): background, layers, composite
    strength: float = STRENGTH_DEFAULTS[DEFAULT_MODE]
    margin: int = DEFAULT_MARGIN
    control_scale: float = 1.0


def panel_fields(panel: Panel) -> dict:
    """The request's picture fields from the panel; none without a picture (text to image)."""
    if not panel.picture:
        return {}
    if panel.mode == "Remix":
        return {"init_image": shown_picture(panel.picture, "init_image"), "strength": panel.strength}
    if panel.mode == "Image prompt":
        return {"image_prompt": shown_picture(panel.picture, "image_prompt")}
    if panel.mode not in CONTROLS:
        raise cc.RequestError("mode", f"{panel.mode!r} is not one of {', '.join(MODES)}")
    fields = {"control": CONTROLS[panel.mode], "control_image": shown_picture(panel.picture, "control_image"),
              "control_scale": panel.control_scale}
    if panel.mode == "Repaint":
        fields.update(mask=painted_mask(panel.editor), strength=panel.strength)
    elif panel.mode == "Extend":
        fields["margin"] = panel.margin
    return fields


def shown_picture(path: str, field: str) -> Picture:
    """The picture as the page shows it: opened and checked by the engine, then turned upright if its EXIF
    data says it was taken sideways (browsers show it so; the API and the command line take pixels as stored)."""
    picture = Picture.open(path, field)
    with Image.open(path) as image:
        if image.getexif().get(_ORIENTATION, 1) == 1:
            return picture
        return Picture.from_pil(ImageOps.exif_transpose(image), field)


def painted_mask(editor: dict | None) -> Picture | None:
    """The mask the user painted: white wherever any layer has paint, black elsewhere; None when nothing is
    painted (the engine then asks for a mask). The layers have the picture's size (the editor's canvas follows
    its background)."""
    layers = [layer for layer in (editor or {}).get("layers") or [] if isinstance(layer, Image.Image)]
    if not layers:
        return None
    coverage = layers[0].convert("RGBA").getchannel("A")
    for layer in layers[1:]:
        if layer.size == coverage.size:
            coverage = ImageChops.lighter(coverage, layer.convert("RGBA").getchannel("A"))
    if coverage.getbbox() is None:
        return None
    return Picture.from_pil(coverage.point(lambda alpha: 255 if alpha else 0), "mask")


def editor_value(mode: str, picture: str | None) -> dict | None:
    """What the mask editor shows: the picture to paint on in Repaint mode, else nothing (it is hidden, and
    an empty editor costs nothing to send)."""
    if mode != "Repaint" or not picture:
        return None
    return {"background": picture, "layers": [], "composite": None}


def api_fields(init_image, strength, image_size, image_prompt, control, control_image, mask, margin,
               control_scale) -> dict:
    """The request's picture fields from /generate_with_images (files as paths), named as the engine's fields
    and with the command line's defaults (strength: REMIX_STRENGTH for a remix, else 1)."""
    files = {"init_image": init_image, "image_prompt": image_prompt, "control_image": control_image, "mask": mask}
    pictures = {name: Picture.open(path, name) for name, path in files.items() if path}
    if strength is None:
        strength = REMIX_STRENGTH if init_image and control in (None, "none") else 1.0
    return {**pictures, "strength": strength, "image_size": image_size,
            "control": control if control is not None else "none", "margin": 0 if margin is None else margin,
            "control_scale": 1.0 if control_scale is None else control_scale}


def from_gallery(path: str, settings: dict, action: str, count: int, fallback: dict) -> tuple[cc.GenerationRequest,
                                                                                             dict]:
    """The one-off request of a gallery action on a saved image: "vary subtle", "vary strong" (a remix at
    VARY's strength, `count` images, new seeds) or "upscale" (2×, one image); the image's own prompt and steps
    (`fallback`: the quality preset, for an image without settings). Returns it and the settings to save with
    the images (the style and the prompt as typed, for Reuse all settings)."""
    field = "control_image" if action == "upscale" else "init_image"
    picture = Picture.open(path, field)
    width, height = (min(max(side, MIN_SIZE), MAX_SIZE) for side in picture.size)
    steps = {key: settings.get(key, fallback[key]) for key in ("prior_steps", "prior_guidance", "decoder_steps",
                                                               "decoder_guidance")}
    request = cc.GenerationRequest(settings.get("prompt", ""), settings.get("negative_prompt", ""), width, height,
                                   None, **steps)
    if action == "upscale":
        request = dataclasses.replace(request, control="upscale", control_image=picture)
    else:
        strength = VARY[action.removeprefix("vary ")]
        request = dataclasses.replace(request, num_images=count, init_image=picture, strength=strength)
    extra = {key: settings[key] for key in ("style", "user_prompt", "user_negative_prompt") if key in settings}
    return request, extra


def panel_label(mode: str, picture: str | None) -> str:
    """The panel's title: it says when a picture is in use, even with the panel closed."""
    return f"Image input: {mode}" if picture else "Image input"
