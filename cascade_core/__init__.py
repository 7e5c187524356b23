"""Cascade Studio's engine: Stable Cascade (Würstchen v3) in plain PyTorch.

    import cascade_core as cc
    model = cc.load("path/to/stable-cascade")
    for event in cc.generate(model, cc.GenerationRequest("a red fox in the snow", seed=42)):
        if isinstance(event, cc.Finished):
            event.images[0].save("fox.png")
"""
from .demo import load_demo
from .devices import release_memory
from .events import Cancelled, Composition, Event, Finished, StageDone, StageProgress, Started
from .loading import ModelLoadError, load, load_with
from .model import CascadeModel
from .options import EngineOptions, OptionsError
from .pipeline import finish, generate
from .request import GenerationRequest, RequestError
from .version import __version__

__all__ = [
    "load", "load_with", "load_demo", "EngineOptions", "OptionsError", "generate", "finish", "GenerationRequest",
    "CascadeModel", "Started", "StageProgress", "StageDone", "Finished", "Cancelled", "Event", "Composition",
    "RequestError", "ModelLoadError", "release_memory", "__version__",
]
