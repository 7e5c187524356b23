"""The outputs folder: every finished image as a PNG with metadata plus a JSON sidecar.

Files are written to a temporary name and hard-linked (or exclusively created) into place,
so a file never appears half-written and an existing file is never overwritten.
"""
from __future__ import annotations

import json
import os
import re
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image as PILImage
from PIL.Image import Image

from cascade_core.images import JSON_CHUNK, read_settings, save_png

DAY_FOLDER = re.compile(r"\d{4}-\d\d-\d\d")  # the writer's YYYY-MM-DD
SAVED_NAME = re.compile(r"\d{6}-(?:\d+|x)(?:-\d+)?\.png")  # the writer's HHMMSS-SEED[-n].png


@dataclass(frozen=True)
class SavedImage:
    path: Path  # the PNG
    settings: dict


def _publish(tmp: Path, folder: Path, stem: str, suffix: str) -> Path:
    """Move tmp to folder/stem{-n}suffix without ever replacing an existing file."""
    for n in range(10_000):
        target = folder / f"{stem}{f'-{n}' if n else ''}{suffix}"
        try:
            os.link(tmp, target)
        except FileExistsError:
            continue
        except OSError:  # no hard links here: reserve the name exclusively, then replace our own placeholder
            try:
                os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                continue
            os.replace(tmp, target)
            return target
        tmp.unlink()
        return target
    raise FileExistsError(f"no free file name for {stem}{suffix} in {folder}")


def _write_json(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".json.tmp", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=2, sort_keys=True)
    _publish(Path(tmp), path.parent, path.stem, ".json")


class OutputsWriter:
    """Writes into root/YYYY-MM-DD/HHMMSS-seed.png (+ .json); never overwrites."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()

    def save(self, image: Image, settings: dict, now: float | None = None) -> SavedImage:
        now = time.time() if now is None else now
        folder = self.root / time.strftime("%Y-%m-%d", time.localtime(now))
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{time.strftime('%H%M%S', time.localtime(now))}-{settings.get('seed', 'x')}"
        fd, tmp = tempfile.mkstemp(prefix=f".{stem}-", suffix=".png.tmp", dir=folder)
        os.close(fd)
        try:
            save_png(image, tmp, settings)
            path = _publish(Path(tmp), folder, stem, ".png")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _write_json(path.with_suffix(".json"), {**settings, "file": path.name})
        return SavedImage(path, settings)


def load_saved(root: str | os.PathLike, limit: int = 200) -> list[SavedImage]:
    """The newest `limit` images under root, newest first, settings from the sidecar or the PNG."""
    root = Path(root)
    if not root.is_dir():
        return []
    pngs = sorted((p for p in root.glob("*/*.png") if not p.name.startswith(".")),
                  key=lambda p: (p.stat().st_mtime, p.name), reverse=True)[:limit]
    return [_with_settings(png) for png in pngs]


def _with_settings(png: Path) -> SavedImage:
    sidecar = png.with_suffix(".json")
    try:
        settings = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.exists() else read_settings(png)
    except (OSError, ValueError):
        settings = {}
    if not isinstance(settings, dict):
        settings = {}
    settings.pop("file", None)
    return SavedImage(png, settings)


def relative_name(root: str | os.PathLike, path: str | os.PathLike) -> str | None:
    """DATE/FILE.png of an image under root (what the browser keeps), or None for any other path."""
    root, path = Path(root).resolve(), Path(path)
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else None


def find_saved(root: str | os.PathLike, name) -> SavedImage | None:
    """The saved image `name` (DATE/FILE.png, as relative_name gives it) under root, or None.

    `name` comes from the browser, so it is checked: two plain path parts, a .png file, no
    hidden or temporary file, and no link that leads out of root.
    """
    root = Path(root).resolve()
    parts = name.split("/") if isinstance(name, str) else []
    if len(parts) != 2 or any(not part or part.startswith(".") or "\\" in part or "\0" in part for part in parts):
        return None
    if not parts[1].endswith(".png"):
        return None
    path = root.joinpath(*parts)
    try:
        if not path.resolve(strict=True).is_relative_to(root) or not path.is_file():
            return None
    except (OSError, RuntimeError):
        return None
    return _with_settings(path)


class DeleteRefused(ValueError):
    """An image was not deleted; the message says why, for the user."""


def owned_png(root: str | os.PathLike, path) -> Path | None:
    """`path` (absolute, or DATE/FILE.png under root) if it is a PNG this studio wrote into root, else None.

    It must be named as the writer names files (root/YYYY-MM-DD/HHMMSS-SEED[-n].png), be a plain
    file in a plain folder (no symbolic link on the way, no `..`) and carry the studio's settings chunk.
    """
    root = Path(root).resolve()
    if not isinstance(path, (str, os.PathLike)) or "\0" in str(path):
        return None
    candidate = Path(os.path.abspath(root / path))  # `..` removed by name, links not followed
    if candidate.parent.parent != root or not DAY_FOLDER.fullmatch(candidate.parent.name) \
            or not SAVED_NAME.fullmatch(candidate.name):
        return None
    try:
        if not stat.S_ISDIR(os.lstat(candidate.parent).st_mode) or not stat.S_ISREG(os.lstat(candidate).st_mode):
            return None
        with PILImage.open(candidate, formats=["PNG"]) as image:
            return candidate if JSON_CHUNK in image.info else None
    except (OSError, ValueError, SyntaxError, EOFError, PILImage.DecompressionBombError):
        return None


def delete_saved(root: str | os.PathLike, path) -> tuple[Path, ...]:
    """Delete a PNG this studio wrote into root (see owned_png) and its JSON sidecar; the files removed.

    Raises DeleteRefused for any other file (nothing is touched) or when the folder refuses.
    """
    png = owned_png(root, path)
    if png is None:
        raise DeleteRefused("Only images this studio saved in its outputs folder can be deleted; nothing was deleted.")
    removed = []
    try:
        for target in (png, png.with_suffix(".json")):
            if _unlink_plain_file(png.parent, target.name):
                removed.append(target)
    except OSError as e:
        raise DeleteRefused(f"Could not delete {png.name}: {e.strerror or e}") from None
    if not removed or removed[0] != png:
        raise DeleteRefused(f"{png.name} is no longer in the outputs folder.")
    return tuple(removed)


def _unlink_plain_file(folder: Path, name: str) -> bool:
    """Remove folder/name if it is a plain file, never through a symbolic link; False if it is not one.

    Where the OS allows it, the folder is opened without following a link and the file is checked
    and removed relative to it, so a folder swapped for a link after the check changes nothing.
    """
    if os.unlink not in os.supports_dir_fd:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return False
        try:
            if not stat.S_ISREG(os.lstat(folder / name).st_mode):
                return False
        except FileNotFoundError:
            return False
        os.unlink(folder / name)
        return True
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        try:
            if not stat.S_ISREG(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                return False
        except FileNotFoundError:
            return False
        os.unlink(name, dir_fd=fd)
        return True
    finally:
        os.close(fd)
