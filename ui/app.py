"""Wires the studio together from options: presets, the model holder, the outputs writer, the page."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from cascade_core.batching import Batcher
from cascade_core.options import EngineOptions
from cascade_core.picture import MAX_FILE_BYTES

from .generation import Services
from .hosting import on_space
from .layout import CSS, JS, build_app
from .model_holder import ModelHolder
from .outputs import OutputsWriter
from .presets import PRESETS_DIR, load_presets

log = logging.getLogger(__name__)
DEMO_NOTE = ("**Demo mode:** the built-in tiny model has random weights and produces noise. "
             "It is for trying the interface and for tests; start without `--demo` (or with `--model REPO_OR_FOLDER`) "
             "for real images.")


@dataclass(frozen=True)
class StudioOptions:
    engine: EngineOptions | None  # what to load (None: the page says how to start), unless demo
    demo: bool = False  # the built-in tiny model instead
    outputs: str = "outputs"
    presets: str = str(PRESETS_DIR)


def create_studio(options: StudioOptions) -> tuple[gr.Blocks, dict]:
    """The Blocks (model loading started in the background) and the keyword arguments for launch()."""
    presets = load_presets(Path(options.presets))
    holder = ModelHolder(options.engine, demo=options.demo).start()
    writer = OutputsWriter(options.outputs)
    notes = [DEMO_NOTE] if options.demo else []
    batch = options.engine.batch_requests if options.engine is not None else 1
    batcher = Batcher(batch) if batch > 1 else None  # else one run at a time, under the runner's lock
    if batcher is not None:
        log.info("Serving up to %d runs at once, their same-size steps batched", batch)
    demo = build_app(Services(holder, writer, hosted=on_space(), batcher=batcher), presets, notes=notes)
    Path(options.outputs).mkdir(parents=True, exist_ok=True)
    launch = {"css": CSS, "js": JS, "allowed_paths": [str(Path(options.outputs).resolve())],
              "theme": gr.themes.Soft(),
              "max_file_size": MAX_FILE_BYTES}  # an upload (a picture) larger than the engine reads is refused
    return demo, launch
