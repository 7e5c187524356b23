"""Loads the model once, in a background thread, so the page is served at once."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import cascade_core as cc
from cascade_core.compiling import warm_up

from .markdown import md_escape


@dataclass(frozen=True)
class ModelOptions:
    path: str | None = None  # a hub repository id or a model folder; None with demo=False: an error saying what to do
    demo: bool = False
    device: str = "auto"
    dtype: str = "auto"
    variant: str = "auto"
    weights: str = "bf16"
    offload: str = "none"
    force_float16: bool = False
    compile: str = "none"  # torch.compile mode of the denoising steps; the holder warms it up before "ready"


class ModelHolder:
    """State of the one model: loading (with its latest progress line), ready, or failed."""

    def __init__(self, options: ModelOptions):
        self.options = options
        self.model = None
        self.error: str | None = None
        self.message = "starting"
        self.started = time.monotonic()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._load, name="model-loader", daemon=True)

    def start(self) -> "ModelHolder":
        self._thread.start()
        return self

    def _say(self, message: str) -> None:
        self.message = message

    def _load(self) -> None:
        o = self.options
        try:
            if o.demo:
                self._say("building the built-in demo model")
                model = cc.load_demo(compile=o.compile)
            elif not o.path:
                raise cc.ModelLoadError("No model given. Start with `python app.py --model REPO_OR_FOLDER`, "
                                        "or `python app.py --demo` to try the interface.")
            else:
                model = cc.load(o.path, device=o.device, dtype=o.dtype, variant=o.variant, weights=o.weights,
                                offload=o.offload, force_float16=o.force_float16, compile=o.compile, progress=self._say)
            if o.compile != "none":
                self._say("compiling the denoising steps for one 1024×1024 image (minutes the first time, "
                          "seconds once the compiled kernels are cached on disk)")
                self._say(f"compiled in {warm_up(model):.0f} s")
            self.model = model
        except cc.ModelLoadError as e:
            self.error = str(e)
        except Exception as e:  # noqa: BLE001 - shown in the page, not a traceback
            self.error = f"{type(e).__name__}: {e}"
        finally:
            self._done.set()

    @property
    def ready(self) -> bool:
        return self.model is not None

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float) -> bool:
        """True once loading has ended (ready or failed)."""
        return self._done.wait(timeout)

    def status_markdown(self) -> str:
        if self.error:
            return f"**Model failed to load.** {md_escape(self.error)}"
        if self.model is None:
            return f"Loading the model… {md_escape(self.message)} ({time.monotonic() - self.started:.0f} s)"
        return f"Model **{md_escape(self.model.name)}** ready on {self.model.device}"
