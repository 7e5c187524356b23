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
    saved = []
    for png in pngs:
        sidecar = png.with_suffix(".json")
        try:
            settings = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.exists() else read_settings(png)
        except (OSError, ValueError):
            settings = {}
        settings.pop("file", None)
        saved.append(SavedImage(png, settings))
    return saved
