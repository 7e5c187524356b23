"""Cascade Studio: `python app.py [--model PATH | --demo]` serves the studio on 127.0.0.1:7860."""
from __future__ import annotations

import argparse
import os
import sys

from ui.app import StudioOptions, create_studio
from ui.model_holder import ModelOptions
from ui.presets import PresetError


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Cascade Studio, a Stable Cascade text-to-image studio.")
    p.add_argument("--model", default=os.environ.get("CASCADE_MODEL"), help="Stable Cascade model folder "
                   "(default: $CASCADE_MODEL)")
    p.add_argument("--demo", action="store_true", help="offline demo on a tiny built-in model (produces noise)")
    p.add_argument("--variant", default="auto", help="model variant: auto, full or lite")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--dtype", default="auto", help="auto, float32 or bfloat16")
    p.add_argument("--offload", action="store_true", help="keep idle stages off the GPU (if the engine supports it)")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    p.add_argument("--share", action="store_true", help="create a public gradio.live link")
    p.add_argument("--auth", help="require a login, as user:pass")
    p.add_argument("--outputs", default="outputs", help="folder for the saved images (default: outputs/)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    auth = None
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not sep or not user:
            sys.exit("--auth must be user:pass")
        auth = (user, password)
    model = ModelOptions(path=args.model, demo=args.demo, device=args.device, dtype=args.dtype,
                         variant=args.variant, offload=args.offload)
    try:
        demo, launch = create_studio(StudioOptions(model=model, outputs=args.outputs))
    except PresetError as e:
        sys.exit(f"Preset files: {e}")
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, auth=auth, **launch)


if __name__ == "__main__":
    main()
