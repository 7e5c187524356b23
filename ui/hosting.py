"""Hosting: `spaces.GPU` (ZeroGPU) around generation on Spaces, and a warning when exposed without a login."""
from __future__ import annotations

import os

try:
    import spaces
except ImportError:  # a plain app
    spaces = None

GPU_SECONDS = 120


def gpu(fn):
    """fn wrapped for ZeroGPU on Spaces; unchanged elsewhere."""
    return spaces.GPU(duration=GPU_SECONDS)(fn) if spaces is not None else fn


def on_space() -> bool:
    """Served as a Hugging Face Space (which sets SPACE_ID): visitors must not read server paths."""
    return bool(os.environ.get("SPACE_ID"))


LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def exposure_warning(host: str, share: bool, auth) -> str | None:
    """A warning when the studio is reachable from other machines without a login, else None."""
    if auth or (host in LOOPBACK and not share):
        return None
    where = "a public gradio.live link" if share else f"{host} (other machines can connect)"
    return (f"Warning: Cascade Studio is served on {where} without --auth: anyone who reaches it can "
            "generate and see every image in the outputs folder. Add --auth user:pass.")
