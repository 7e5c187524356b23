"""Gallery images as one zip to download: the saved PNGs byte for byte, their settings chunks intact.

Only PNGs this studio wrote into its outputs folder go in (ui/outputs.owned_png). Each zip is
written to a folder of its own inside a private temporary folder (tempfile.mkdtemp: mode 0700,
under the system's temp folder, from which Gradio serves a file a handler returns — see
_check_allowed in gradio/processing_utils.py). Gradio copies a returned file into its cache,
so a zip is needed only briefly: each new zip removes those older than `keep_seconds`.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .outputs import owned_png

log = logging.getLogger(__name__)

MAX_IMAGES = 200  # as many as the browser remembers of a gallery (ui/handlers.MAX_REMEMBERED)
MAX_BYTES = 512 * 2**20  # of PNGs in one zip
KEEP_SECONDS = 600
SLUG_CHARS = 40


class ArchiveError(ValueError):
    """No zip was made; the message says why, for the user."""


@dataclass(frozen=True)
class Archive:
    path: Path  # the zip, for a gr.DownloadButton or gr.File
    count: int  # images in it
    skipped: tuple[str, ...]  # why some of the images asked for are not in it, for the user


def member_name(index: int, settings: dict) -> str:
    """The image's name in the zip: its place, seed and prompt as typed, e.g. 01-seed42-a-red-fox.png."""
    seed = settings.get("seed")
    prompt = settings.get("user_prompt") or settings.get("prompt") or ""
    ascii_prompt = unicodedata.normalize("NFKD", str(prompt)).encode("ascii", "ignore").decode()  # é → e
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_prompt.lower()).strip("-")
    if len(slug) > SLUG_CHARS:
        slug = slug[:SLUG_CHARS].rsplit("-", 1)[0]
    parts = [f"{index:02d}", f"seed{seed}" if isinstance(seed, int) else None, slug or None]
    return "-".join(p for p in parts if p) + ".png"


class BatchZips:
    """Zips of gallery images from one outputs folder, in a private temporary folder made on first use."""

    def __init__(self, outputs_root: str | os.PathLike, folder: str | os.PathLike | None = None,
                 keep_seconds: float = KEEP_SECONDS, max_images: int = MAX_IMAGES, max_bytes: int = MAX_BYTES):
        self.root = Path(outputs_root).resolve()
        self._folder = Path(folder) if folder is not None else None
        self.keep_seconds, self.max_images, self.max_bytes = keep_seconds, max_images, max_bytes

    def make(self, items: list[dict], now: float | None = None) -> Archive:
        """A zip of the gallery items' saved PNGs (items as ui/gallery.make_item builds them), in their order."""
        now = time.time() if now is None else now
        chosen, skipped = self._chosen(items)
        if not chosen:
            why = "; ".join(skipped) or "the gallery is empty"
            raise ArchiveError(f"No saved images to put in a zip: {why}.")
        folder = self._new_folder(now)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
        path = folder / f"cascade-studio-{stamp}-{len(chosen)}-image{'s' if len(chosen) > 1 else ''}.zip"
        try:
            with zipfile.ZipFile(path, "x", zipfile.ZIP_STORED) as zf:  # PNGs are compressed already
                for k, (png, settings) in enumerate(chosen, start=1):
                    zf.write(png, member_name(k, settings))
        except OSError as e:
            shutil.rmtree(folder, ignore_errors=True)
            raise ArchiveError(f"The zip could not be written: {e.strerror or e}.") from None
        return Archive(path, len(chosen), tuple(skipped))

    def close(self) -> None:
        """Remove the temporary folder and every zip in it."""
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)

    def _chosen(self, items: list[dict]) -> tuple[list[tuple[Path, dict]], list[str]]:
        chosen, seen, total, unsaved, over = [], set(), 0, 0, 0
        for item in items:
            png = owned_png(self.root, item.get("path")) if isinstance(item, dict) else None
            if png is None:
                unsaved += 1
                continue
            if png in seen:
                continue
            seen.add(png)
            try:
                size = png.stat().st_size
            except OSError:  # deleted meanwhile
                unsaved += 1
                continue
            if len(chosen) >= self.max_images or total + size > self.max_bytes:
                over += 1
                continue
            total += size
            chosen.append((png, item.get("settings") or {}))
        skipped = []
        if unsaved:
            skipped.append(f"{unsaved} image{'s' if unsaved > 1 else ''} not saved in the outputs folder")
        if over:
            skipped.append(f"{over} image{'s' if over > 1 else ''} left out: a zip holds at most "
                           f"{self.max_images} images and {self.max_bytes / 2**20:.0f} MB")
        return chosen, skipped

    def _new_folder(self, now: float) -> Path:
        """A new folder for one zip; older zips' folders past keep_seconds are removed first."""
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="cascade-studio-zips-"))
        self._folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        for old in self._folder.iterdir():
            try:
                if old.is_dir() and not old.is_symlink() and old.stat().st_mtime < now - self.keep_seconds:
                    shutil.rmtree(old)
            except OSError as e:
                log.warning("could not remove the old zip folder %s: %s", old, e)
        return Path(tempfile.mkdtemp(dir=self._folder))
