"""The outputs folder: every finished image as a PNG with metadata plus a JSON sidecar.

Files are written to a temporary name and hard-linked (or exclusively created) into place,
so a file never appears half-written and an existing file is never overwritten.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from PIL.Image import Image

from cascade_core.images import read_settings, save_png


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
