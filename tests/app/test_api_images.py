"""/generate_with_images through gradio_client: pictures as files (handle_file), every mode on the demo model,
the sizes each mode gives, what is saved, repaint's and extend's unblended images, and the engine's messages for
bad pictures; /generate unchanged; server paths and oversized uploads refused."""
from __future__ import annotations

import re

import httpx  # a gradio_client dependency
import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image, ImageDraw, ImageFilter

from cascade_core.image_conditions import fit
from cascade_core.images import read_settings
from cascade_core.picture import MAX_FILE_BYTES, Picture

TEXT = ("a lighthouse on a cliff", "")  # prompt, negative prompt
STEPS = dict(seed=21, prior_steps=3, prior_guidance=4.0, decoder_steps=2, decoder_guidance=1.1, num_images=1)
GENERATE_PARAMETERS = ["prompt", "negative_prompt", "width", "height", "seed", "prior_steps", "prior_guidance",
                       "decoder_steps", "decoder_guidance", "num_images"]
PICTURE_PARAMETERS = ["init_image", "strength", "image_size", "image_prompt", "control", "control_image", "mask",
                      "margin", "control_scale"]


def drawing(width: int, height: int) -> Image.Image:
    """A picture with edges: a sky, a sea and a sun."""
    image = Image.new("RGB", (width, height), (90, 150, 220))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, height * 2 // 3, width, height), fill=(20, 60, 120))
    draw.ellipse((width // 4, height // 6, width // 2, height // 6 + width // 4), fill=(250, 210, 60))
    return image


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pictures")
    paths = {}
    for name, size in {"square": (256, 256), "wide": (512, 256), "landscape": (384, 256), "strip": (256, 128),
                       "small": (128, 192), "tiny": (64, 64)}.items():
        paths[name] = folder / f"{name}.png"
        drawing(*size).save(paths[name])
    mask = np.zeros((256, 384), np.uint8)
    mask[64:192, 128:256] = 255  # repaint the middle
    paths["mask"] = folder / "mask.png"
    Image.fromarray(mask).save(paths["mask"])
    paths["mask_200"] = folder / "mask_200.png"
    Image.new("L", (200, 200), 255).save(paths["mask_200"])
    paths["not_a_picture"] = folder / "notes.png"
    paths["not_a_picture"].write_text("these are notes, not a picture")
    return paths


@pytest.fixture(scope="module")
def client(demo_studio):
    return Client(demo_studio.url, verbose=False)


def generate(client: Client, width=256, height=256, **pictures):
    """The final outputs of one /generate_with_images call (keyword arguments, files through handle_file)."""
    pictures = {k: handle_file(str(v)) if k in ("init_image", "image_prompt", "control_image", "mask") else v
                for k, v in pictures.items()}
    return client.predict(*TEXT, width=width, height=height, **STEPS, **pictures, api_name="/generate_with_images")


# mode, the request's size, its picture fields (file names), the size the engine gives
MODES = [
    ("remix", (256, 256), dict(init_image="wide", strength=0.5), (256, 256)),  # the request's size, cropped to it
    ("remix", (256, 256), dict(init_image="wide", image_size=256), (512, 256)),  # the notebooks' sizing; strength 0.8
    ("image prompt", (320, 256), dict(image_prompt="square"), (320, 256)),
    ("edges", (320, 256), dict(control="canny", control_image="square", control_scale=0.8), (320, 256)),
    ("repaint", (256, 256), dict(control="inpaint", control_image="landscape", mask="mask", strength=0.9),
     (384, 256)),  # the picture's aspect at the request's area, snapped
    ("extend", (256, 256), dict(control="outpaint", control_image="strip", margin=64), (384, 256)),  # 384 × 256 grown
    ("upscale", (256, 256), dict(control="upscale", control_image="small"), (256, 384)),  # 2× the picture
]


@pytest.mark.parametrize("mode, size, fields, expected", MODES, ids=[f"{m[0]}-{k}" for k, m in enumerate(MODES)])
def test_each_mode_gives_images_of_its_size_saved_with_mode_strength_and_hashes(client, files, demo_studio, mode,
                                                                               size, fields, expected):
    given = {k: files[v] if isinstance(v, str) and v in files else v for k, v in fields.items()}
    preview, stage_b, images, settings, status, control_map, unblended = generate(client, *size, **given)
    assert status.startswith("Done") and len(images) == 1
    assert Image.open(images[0]["image"]).size == expected
    image = settings["images"][0]
    assert (image["mode"], image["width"], image["height"]) == (mode, *expected)
    for name in ("init_image", "image_prompt", "control_image", "mask"):  # each picture as its digest, or None
        digest = f"sha256:{Picture.open(given[name]).digest}" if name in given else None
        assert image[name] == digest, name
    assert image["strength"] == fields.get("strength", 0.8 if mode == "remix" else 1.0)  # the command line's defaults
    saved = read_settings(image["file"])  # the PNG records the mode, the strength and the pictures' hashes
    assert {k: saved[k] for k in ("mode", "strength", "init_image", "control_image", "mask")} == \
        {k: image[k] for k in ("mode", "strength", "init_image", "control_image", "mask")}
    if mode in ("edges", "repaint", "extend"):  # the control map the ControlNet saw comes back too
        assert control_map and Image.open(control_map).size[0] > 0
    else:
        assert control_map is None
    if mode in ("repaint", "extend"):  # the images before the picture was blended back in
        assert len(unblended) == 1 and Image.open(unblended[0]["image"]).size == expected
    else:
        assert unblended in (None, [])  # the handler's None: an empty gallery, which gradio_client reads as []


def test_the_repaint_mask_comes_back_as_the_control_map(client, files):
    *_, control_map, _ = generate(client, control="inpaint", control_image=files["landscape"], mask=files["mask"])
    shown = np.asarray(Image.open(control_map).convert("L"), dtype=float) / 255
    h, w = shown.shape
    assert shown[h // 2, w // 2] > 0.5 and shown[h // 8, w // 8] < 0.5  # white in the middle, black outside


def test_positional_call_and_generate_keeps_its_parameters(client, files):
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert [p["parameter_name"] for p in api["/generate"]["parameters"]] == GENERATE_PARAMETERS + ["loras"]
    assert [p["parameter_name"] for p in api["/generate_with_images"]["parameters"]] == \
        GENERATE_PARAMETERS + PICTURE_PARAMETERS + ["loras"]
    final = client.predict(*TEXT, 256, 256, 5, 2, 4.0, 2, 1.1, 1, handle_file(str(files["square"])), 0.4, None, None,
                           "none", None, None, 0, 1.0, api_name="/generate_with_images")
    assert final[3]["images"][0]["mode"] == "remix" and final[3]["images"][0]["strength"] == 0.4
    text = client.predict(*TEXT, 256, 256, 6, 2, 4.0, 2, 1.1, 1, api_name="/generate_with_images")  # no picture
    assert text[3]["images"][0]["mode"] == "text" and text[5] is None and text[6] in (None, [])
    assert len(client.predict(*TEXT, 256, 256, 6, 2, 4.0, 2, 1.1, 1, api_name="/generate")) == 5  # as it was


def kept_and_mask(files, fields: dict) -> tuple[np.ndarray, np.ndarray]:
    """The picture a repaint or an extend keeps, (H, W, 3) in [0, 1], and where it is repainted, (H, W) bool,
    both at the picture's (or the grown canvas's) own size, as the engine builds them."""
    picture = Image.open(files[fields["control_image"]]).convert("RGB")
    if fields["control"] == "inpaint":
        mask = np.asarray(Image.open(files[fields["mask"]]).convert("L"), dtype=float) / 255 > 0.5
        return np.asarray(picture, dtype=float) / 255, mask
    m, (w, h) = fields["margin"], picture.size
    canvas = Image.new("RGB", (w + 2 * m, h + 2 * m), (255, 255, 255))  # the new band is white, as the engine's
    canvas.paste(picture, (m, m))
    mask = np.ones((h + 2 * m, w + 2 * m), bool)
    mask[m:m + h, m:m + w] = False
    return np.asarray(canvas, dtype=float) / 255, mask


def fitted(x: np.ndarray, width: int, height: int, mode: str = "bilinear") -> np.ndarray:
    """(H, W, C) fitted to width × height by the engine's `fit` (centre crop, then resize)."""
    tensor = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).permute(2, 0, 1)[None]
    return fit(tensor, width, height, mode)[0].permute(1, 2, 0).numpy()


FAR = 16  # px: farther than this from the repainted area, the final image is the picture


@pytest.mark.parametrize("fields", [dict(control="inpaint", control_image="landscape", mask="mask", strength=0.9),
                                    dict(control="outpaint", control_image="strip", margin=64)],
                         ids=["repaint", "extend"])
def test_repaint_and_extend_return_the_unblended_images_on_the_last_update_only(client, files, fields):
    """The final image is the picture far from the repainted area; the unblended one is the decoder's output as it
    came, which the final image equals inside the repainted area (the blend's weight is 1 there)."""
    given = {k: handle_file(str(files[v])) if k in ("control_image", "mask") else v for k, v in fields.items()}
    job = client.submit(*TEXT, width=256, height=256, **STEPS, **given, api_name="/generate_with_images")
    final = job.result(timeout=180)
    assert all(output[6] in (None, []) for output in job.outputs() if output != final)  # none before the last update
    images, settings, unblended = final[2], final[3], final[6]
    assert len(images) == len(unblended) == 1 and unblended[0]["image"] != images[0]["image"]
    blended = np.asarray(Image.open(images[0]["image"]).convert("RGB"), dtype=float) / 255
    raw = np.asarray(Image.open(unblended[0]["image"]).convert("RGB"), dtype=float) / 255
    assert raw.shape == blended.shape
    height, width = blended.shape[:2]
    assert (settings["images"][0]["width"], settings["images"][0]["height"]) == (width, height)

    kept, mask = kept_and_mask(files, fields)
    picture = fitted(kept, width, height)
    repainted = fitted(mask[..., None].astype(float), width, height, "nearest")[..., 0] > 0.5
    near = np.asarray(Image.fromarray(repainted.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(2 * FAR - 1)))
    far = near == 0  # at least FAR px from every repainted pixel
    assert far.mean() > 0.1 and repainted.mean() > 0.1
    assert np.abs(blended - picture)[far].max() <= 2 / 255  # the picture kept
    assert np.abs(blended - raw)[repainted].max() <= 1 / 255  # the repainted area as the decoder made it
    assert np.abs(raw - picture)[far].max() > 2 / 255  # the raw output is not the picture: it was not blended


@pytest.mark.parametrize("fields, message", [
    (dict(init_image="not_a_picture"), "init_image: this file is not a picture PIL can read (use PNG, JPEG or WebP)"),
    (dict(control="inpaint", control_image="square", mask="mask_200"),
     "mask: the mask is 200×200 and the picture 256×256: paint the mask on the picture itself"),
    (dict(control="inpaint", control_image="square"),
     "mask: repainting needs a mask: paint the area to repaint (white) on the picture"),
    (dict(control="upscale", control_image="tiny"),
     "control_image: upscaling the 64×64 picture 2× makes 128×128; each side must be 256–2048 px"),
    (dict(control="outpaint", control_image="square"),
     "margin: 0 px is outside 8–1024 px (the band added on every side)"),
    (dict(control="sketch", control_image="square"), "control: 'sketch' is not one of none, canny, inpaint, outpaint, "
                                                     "upscale"),
    (dict(init_image="square", strength=0), "strength: 0 is outside (0, 1]"),
])
def test_bad_pictures_and_fields_are_the_engines_messages(client, files, fields, message):
    given = {k: files[v] if isinstance(v, str) and v in files else v for k, v in fields.items()}
    with pytest.raises(AppError, match=f"^{re.escape(message)}$"):
        generate(client, **given)


def test_a_server_path_never_reaches_the_engine_and_large_uploads_are_refused(demo_studio):
    """A picture parameter holding a path on the server (not an upload) is refused by Gradio before the handler
    runs; an upload over the engine's file limit (64 MiB) is refused at the upload (HTTP 413)."""
    data = [*TEXT, 256, 256, 1, 2, 4.0, 2, 1.1, 1, {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}},
            1.0, None, None, "none", None, None, 0, 1.0, None]
    call = httpx.post(f"{demo_studio.url}/gradio_api/call/generate_with_images", json={"data": data}, timeout=30)
    event = call.json()["event_id"]
    answer = httpx.get(f"{demo_studio.url}/gradio_api/call/generate_with_images/{event}", timeout=60).text
    assert answer.startswith("event: error") and "root:" not in answer
    assert "not uploaded by a user" in demo_studio.log.read_text()
    big = httpx.post(f"{demo_studio.url}/gradio_api/upload", timeout=120,
                     files={"files": ("big.png", b"\0" * (MAX_FILE_BYTES + 1), "image/png")})
    assert big.status_code == 413
