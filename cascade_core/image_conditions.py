"""Pictures → what Stage C starts from and is conditioned on, computed once per request.

The procedures are the official notebooks' (../shared/reference README, extras/):
- remix (image-to-image): the picture's EfficientNet encoding, noised to t = strength with the
  forward process at shift 1 by the request's first draw, sampled from t_start = strength for
  int(steps · strength) steps;
- image prompt: the picture's CLIP image embedding as `clip_img` (the unconditional branch: zeros);
- edges, repaint, extend, upscale: a ControlNet's outputs, the same for both branches, times
  `control_scale`; repaint and extend also start from the picture as a remix does (the notebook
  uses strength 1, where the picture only tints the start).
Pictures are fitted to the request (centre crop to its aspect, resized to 32× its Stage C latent,
so the encoding has the latent's size), or with `image_size` resized as the notebooks do
(shorter side to N), when the latent's size follows the picture.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from PIL import Image

from . import sampling
from .control_filters import canny, inpaint_input
from .devices import dtype_of
from .errors import ModelLoadError
from .image_inputs import clip_preprocess, resize_image, to_tensor
from .image_preprocess import effnet_preprocess
from .images import to_pil
from .picture import Picture
from .request import GenerationRequest

EFFNET_STRIDE = 32  # pixels per EfficientNet latent cell
CLIP_RESIZE = 768  # the notebooks resize a picture so before the CLIP transform
FEATHER = 8  # pixels over which a repainted area blends into the kept picture
CONTROLNETS = {"canny": "controlnet_canny", "inpaint": "controlnet_inpainting", "outpaint": "controlnet_inpainting",
               "upscale": "controlnet_super_resolution"}


@dataclass(frozen=True)
class StageCSetup:
    """How Stage C runs for one request: its start (B, 16, h, w), from where and for how many steps,
    the image embedding (B, 1, c_clip_img; zeros without an image prompt), the ControlNet's outputs,
    the control map the user sees, and the picture and mask that the final image keeps (repaint, extend)."""
    start: torch.Tensor
    t_start: float
    steps: int
    clip_img: torch.Tensor
    control: tuple[torch.Tensor | None, ...] | None = None
    shown: tuple[Image.Image, ...] = ()
    keep: tuple[torch.Tensor, torch.Tensor] | None = None  # (1, 3, H, W) pixels, (1, 1, H, W) weight of the new


def stage_c_setup(extras: Callable[[str], torch.nn.Module] | None, request: GenerationRequest,
                  shape_c: tuple[int, int, int], c_clip_img: int, draw: Callable[[tuple], torch.Tensor],
                  device: torch.device) -> StageCSetup:
    """The Stage C setup of a validated request; `draw(shape)` is the request's next noise draw, each image's
    own (B, *shape). The first draw is the start's noise, as in the official code."""
    n = request.num_images
    clip_img = torch.zeros(n, 1, c_clip_img, device=device)
    if request.image_prompt is not None:
        clip_img = _image_embedding(_network(extras, "image_encoder"), request, device).expand(n, -1, -1)
    control, shown, keep, picture = None, (), None, None
    if request.control == "upscale":
        control = _upscale_control(extras, request, device)
    elif request.control == "canny":
        x = _fitted(request.control_image, request, shape_c, device)
        edges = canny(x)
        control, shown = _control(extras, request, edges), tuple(to_pil(edges.expand(-1, 3, -1, -1)))
    elif request.control in ("inpaint", "outpaint"):
        canvas, canvas_mask = _canvas_and_mask(request, device)
        picture = _fitted_tensor(canvas, request, shape_c)
        mask = F.interpolate(canvas_mask.float(), size=picture.shape[-2:], mode="nearest") > 0.5
        control = _control(extras, request, inpaint_input(picture, mask))
        shown = tuple(to_pil(mask.float().expand(-1, 3, -1, -1)))
        keep = _kept(request, canvas, canvas_mask)
    elif request.init_image is not None:
        picture = _fitted(request.init_image, request, shape_c, device)
    if picture is None:
        return StageCSetup(draw(shape_c), 1.0, request.prior_steps, clip_img, control, shown)
    latent = _encoded(extras, picture)
    eps = draw(tuple(latent.shape[1:]))
    start = sampling.noised(latent.expand(n, -1, -1, -1), eps, request.strength)
    steps = int(request.prior_steps * request.strength)
    return StageCSetup(start, request.strength, max(steps, 1), clip_img, control, shown, keep)


def _network(extras, name: str) -> torch.nn.Module:
    if extras is None:
        raise ModelLoadError(f"this model has no {name} network for this mode; load a released model or a folder "
                             "that names it (README, Image inputs)")
    return extras(name)


def _encoded(extras, x: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) in [0, 1] → its EfficientNet encoding (1, 16, ⌈H/32⌉, ⌈W/32⌉), float32."""
    encoder = _network(extras, "effnet_encoder")
    return encoder(effnet_preprocess(x).to(dtype_of(encoder))).float()


def _fitted(picture: Picture, request: GenerationRequest, shape_c: tuple[int, int, int],
            device: torch.device) -> torch.Tensor:
    """(1, 3, H, W): resized as the notebooks do (image_size), else fitted to 32× the Stage C latent."""
    return _fitted_tensor(to_tensor(picture.pixels).to(device)[None], request, shape_c)


def _fitted_tensor(x: torch.Tensor, request: GenerationRequest, shape_c: tuple[int, int, int]) -> torch.Tensor:
    if request.image_size is not None:
        return resize_image(x, request.image_size)
    return fit(x, EFFNET_STRIDE * shape_c[2], EFFNET_STRIDE * shape_c[1])


def fit(x: torch.Tensor, width: int, height: int, mode: str = "bilinear") -> torch.Tensor:
    """(B, C, H, W) centre-cropped to the aspect width/height, then resized to (height, width)."""
    h, w = x.shape[-2:]
    if w * height > h * width:  # wider than wanted: crop the sides
        keep = round(h * width / height)
        x = x[..., :, (w - keep) // 2:(w - keep) // 2 + keep]
    else:
        keep = round(w * height / width)
        x = x[..., (h - keep) // 2:(h - keep) // 2 + keep, :]
    if mode == "nearest":
        return F.interpolate(x, size=(height, width), mode="nearest")
    return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)


def _image_embedding(encoder: torch.nn.Module, request: GenerationRequest, device: torch.device) -> torch.Tensor:
    """(1, 1, c_clip_img): the projected CLIP image embedding, not normalised (the notebooks' `clip_img`)."""
    x = resize_image(to_tensor(request.image_prompt.pixels).to(device)[None], request.image_size or CLIP_RESIZE)
    return encoder(pixel_values=clip_preprocess(x).to(dtype_of(encoder))).image_embeds[:, None].float()


def _control(extras, request: GenerationRequest, cnet_input: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
    """The ControlNet's outputs for the request's control, times its scale (official cnet_multiplier)."""
    net = _network(extras, CONTROLNETS[request.control])
    outputs = net(cnet_input.to(dtype_of(net)))
    return tuple(None if out is None else out.float() * request.control_scale for out in outputs)


def _upscale_control(extras, request: GenerationRequest, device: torch.device) -> tuple[torch.Tensor | None, ...]:
    """Super-resolution: the low-resolution picture's EfficientNet encoding, nearest ×2, into the ControlNet."""
    latent = _encoded(extras, to_tensor(request.control_image.pixels).to(device)[None])
    return _control(extras, request, F.interpolate(latent, scale_factor=2, mode="nearest"))


def _canvas_and_mask(request: GenerationRequest, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, 3, H, W), (1, 1, H, W) bool. Repaint: the picture and the user's mask (bright: repaint). Extend:
    the picture on a canvas grown by `margin` on every side (white, as the filter fills masked pixels),
    the new band as the mask."""
    x = to_tensor(request.control_image.pixels).to(device)[None]
    if request.control == "inpaint":
        return x, to_tensor(request.mask.pixels).to(device)[None].mean(dim=1, keepdim=True) > 0.5
    m = request.margin
    canvas = F.pad(x, (m, m, m, m), value=1.0)
    mask = torch.ones_like(canvas[:, :1], dtype=torch.bool)
    mask[..., m:-m, m:-m] = False
    return canvas, mask


def _kept(request: GenerationRequest, canvas: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The canvas at the output size and a soft mask: 1 on the repainted area, fading to 0 over FEATHER
    pixels outside it (dilated by half, then box-blurred by half)."""
    pixels = fit(canvas, request.width, request.height)
    hard = fit(mask.float(), request.width, request.height, mode="nearest")
    radius = FEATHER // 2
    grown = F.max_pool2d(hard, kernel_size=2 * radius + 1, stride=1, padding=radius)
    soft = F.avg_pool2d(grown, kernel_size=2 * radius + 1, stride=1, padding=radius, count_include_pad=False)
    return pixels, soft


def blend(image: torch.Tensor, keep: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The final image (B, 3, H, W) keeping the picture's pixels outside the repainted area."""
    pixels, weight = keep
    return torch.lerp(pixels, image, weight)
