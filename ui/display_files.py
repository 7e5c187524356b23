"""A run's shown images as files, each written once, for Gradio to copy and serve.

Handed a PIL image, Gradio encodes it again on every yield and rewrites the same file of its
cache in place (`gradio.processing_utils.save_pil_to_cache`): a run yields its preview on every
progress step, so a browser or API client still fetching that file from the previous yield can
read it empty or cut short. Handed a path, Gradio copies the file into its cache once, under a
temporary name renamed into place (`save_file_to_cache`). So each image a run shows is encoded
here once, to a file of its own, and the same path is yielded for as long as the image is shown.
"""
from __future__ import annotations

import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from PIL.Image import Image


class DisplayFiles:
    """One run's images → files in a private folder; the same image object always gets the same file."""

    def __init__(self, folder: Path, format: str):
        self.folder, self.format = folder, format
        self._files: dict[int, tuple[Image, str]] = {}  # id(image) → (image, kept so its id stays unique; path)

    def adopt(self, image: Image, path: str | Path) -> None:
        """Show `image` from a file that already holds it and is never rewritten (a saved output)."""
        self._files[id(image)] = (image, str(path))

    def path(self, image: Image | None) -> str | None:
        """The file showing `image` (written on first use), or None for no image."""
        if image is None:
            return None
        known = self._files.get(id(image))
        if known is None:
            path = self.folder / f"{len(self._files):03d}.{self.format}"  # a new name for each image
            image.save(path, self.format)
            known = self._files[id(image)] = (image, str(path))
        return known[1]


@contextmanager
def display_files(format: str) -> Iterator[DisplayFiles]:
    """DisplayFiles in a new temporary folder, removed with its files when the run's handler ends.

    Gradio copies a yielded file into its cache while it post-processes that yield, before it asks
    the handler for the next one, so the folder may go as soon as the handler returns.
    """
    with tempfile.TemporaryDirectory(prefix="cascade-studio-run-") as folder:
        yield DisplayFiles(Path(folder), format)
