"""Wires the studio together from options: presets, the model holder, the outputs writer, the page."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from .generation import Services
from .layout import CSS, JS, build_app
from .markdown import md_escape
from .model_holder import ModelHolder, ModelOptions, unsupported_options
from .outputs import OutputsWriter
from .presets import PRESETS_DIR, load_presets

DEMO_NOTE = ("**Demo mode:** the built-in tiny model has random weights and produces noise. "
             "It is for trying the interface and for tests; start with `--model PATH` for real images.")


@dataclass(frozen=True)
class StudioOptions:
    model: ModelOptions
    outputs: str = "outputs"
    presets: str = str(PRESETS_DIR)


def create_studio(options: StudioOptions) -> tuple[gr.Blocks, dict]:
    """The Blocks (model loading started in the background) and the keyword arguments for launch()."""
    presets = load_presets(Path(options.presets))
    holder = ModelHolder(options.model).start()
    writer = OutputsWriter(options.outputs)
    notes = [DEMO_NOTE] if options.model.demo else []
    ignored = unsupported_options(options.model)
    if ignored:
        notes.append(f"This engine does not support {md_escape(', '.join('--' + n for n in ignored))} yet; "
                     "the option is ignored.")
    demo = build_app(Services(holder, writer), presets, notes=notes)
    Path(options.outputs).mkdir(parents=True, exist_ok=True)
    launch = {"css": CSS, "js": JS, "allowed_paths": [str(Path(options.outputs).resolve())],
              "theme": gr.themes.Soft()}
    return demo, launch
