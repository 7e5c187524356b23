"""A user's picture, checked once: decoded RGB pixels and their digest.

Pictures enter requests (image-to-image, image prompts, control images, masks) as `Picture`s.
`Picture.open` refuses what would hurt the server or give a wrong result, each with a message
that says what to do: a file that is not a picture or is cut short, one over `MAX_PIXELS`
(a decompression bomb, PIL's own limit lowered to ours), or an empty one.
"""
from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import RequestError

MAX_PIXELS = 4096 * 4096  # larger pictures are refused: 48 MB of RGB; the engine works at ≤ 2048²
MAX_FILE_BYTES = 64 * 2**20


@dataclass(frozen=True, eq=False)
class Picture:
    """RGB pixels, (H, W, 3) uint8, read-only; equal pictures have equal digests."""
    pixels: np.ndarray = field(repr=False)
    digest: str = ""  # sha256 of the pixels and their shape, as hex

    def __post_init__(self):
        pixels = np.ascontiguousarray(self.pixels, dtype=np.uint8)
        if pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"a Picture holds (H, W, 3) pixels, not {pixels.shape}")
        pixels.setflags(write=False)
        object.__setattr__(self, "pixels", pixels)
        shape = ",".join(map(str, pixels.shape)).encode()
        object.__setattr__(self, "digest", hashlib.sha256(shape + b":" + pixels.tobytes()).hexdigest())

    def __eq__(self, other) -> bool:
        return isinstance(other, Picture) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as PIL says it."""
        return self.pixels.shape[1], self.pixels.shape[0]

    def to_pil(self) -> Image.Image:
        return Image.fromarray(self.pixels)

    @classmethod
    def from_pil(cls, image: Image.Image, field_name: str = "image") -> "Picture":
        """An opened PIL image, checked for size, converted to RGB (transparency over white)."""
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise RequestError(field_name, f"the picture is {width}×{height} pixels; the limit is "
                               f"{MAX_PIXELS:,} pixels (4096×4096): make it smaller first")
        if width == 0 or height == 0:
            raise RequestError(field_name, "the picture is empty (0 pixels)")
        try:
            image.load()
        except (OSError, ValueError) as e:
            raise RequestError(field_name, "the picture is damaged or cut short; save it again and retry") from e
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            background = Image.new("RGBA", image.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, image.convert("RGBA"))
        return cls(np.asarray(image.convert("RGB")))

    @classmethod
    def open(cls, source: str | os.PathLike | bytes, field_name: str = "image") -> "Picture":
        """A picture file (PNG, JPEG, WebP, …) or its bytes; raises RequestError naming `field_name`."""
        try:
            data = source if isinstance(source, bytes) else _read(source)
        except OSError as e:
            raise RequestError(field_name, f"cannot read {os.fspath(source)!r} ({e.strerror or e})") from e
        if len(data) > MAX_FILE_BYTES:
            raise RequestError(field_name, f"the file is {len(data) / 2**20:.0f} MiB; the limit is "
                               f"{MAX_FILE_BYTES // 2**20} MiB")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                image = Image.open(io.BytesIO(data))
            except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
                raise RequestError(field_name, _open_problem(e)) from e
            except OSError as e:
                raise RequestError(field_name, "the picture is damaged or cut short; save it again and retry") from e
            return cls.from_pil(image, field_name)


def _read(path: str | os.PathLike) -> bytes:
    with open(path, "rb") as f:
        return f.read(MAX_FILE_BYTES + 1)


def _open_problem(error: Exception) -> str:
    if isinstance(error, UnidentifiedImageError):
        return "this file is not a picture PIL can read (use PNG, JPEG or WebP)"
    return (f"the picture declares too many pixels (a decompression bomb?); the limit is {MAX_PIXELS:,} pixels: "
            "make it smaller first")
