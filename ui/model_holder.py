"""Loads the model once, in a background thread, so the page is served at once."""
from __future__ import annotations

import logging
import threading
import time

import cascade_core as cc
from cascade_core.warmup import warm_up

from .markdown import md_escape

log = logging.getLogger(__name__)


class ModelHolder:
    """State of the one model: loading (with its latest progress line), ready, or failed.

    engine: what to load (None, unless `demo`: an error saying how to start); demo: the built-in
    tiny model instead, run with `engine`'s compile mode.
    """

    def __init__(self, engine: cc.EngineOptions | None = None, *, demo: bool = False):
        self.engine, self.demo = engine, demo
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
        log.info("%s", message)

    def _load(self) -> None:
        try:
            self.model = self._loaded()
        except (cc.ModelLoadError, cc.OptionsError) as e:
            log.error("the model could not be loaded: %s", e)
            self.error = str(e)
        except Exception as e:  # noqa: BLE001 - the loader thread's last resort: logged in full, summed up on the page
            log.exception("loading the model failed")
            self.error = f"Loading failed on the server ({type(e).__name__}); the server log has the details."
        finally:
            self._done.set()

    def _loaded(self) -> cc.CascadeModel:
        compile = self.engine.compile if self.engine else "none"
        if self.demo:
            self._say("building the built-in demo model")
            model = cc.load_demo(compile=compile)
        elif self.engine is None:
            raise cc.ModelLoadError("No model given. Start with `python app.py --model REPO_OR_FOLDER`, "
                                    "or `python app.py --demo` to try the interface.")
        else:
            model = cc.load_with(self.engine, progress=self._say)
        if compile != "none":
            self._say("compiling the denoising steps for one 1024×1024 image (minutes the first time, "
                      "seconds once the compiled kernels are cached on disk)")
            self._say(f"compiled in {warm_up(model):.0f} s")
        return model

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
