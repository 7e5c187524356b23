"""Cascade Studio: `python app.py [--model PATH | --demo]` serves the studio on 127.0.0.1:7860."""
from __future__ import annotations

import argparse
import logging
import os
import sys

from cascade_core import runtime
from cascade_core.options import EngineOptions, OptionsError
from ui.app import StudioOptions, create_studio
from ui.hosting import exposure_warning
from ui.presets import PresetError


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Cascade Studio, a Stable Cascade text-to-image studio.")
    EngineOptions.add_arguments(p)
    p.add_argument("--demo", action="store_true", help="offline demo on a tiny built-in model (produces noise)")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    p.add_argument("--share", action="store_true", help="create a public gradio.live link")
    p.add_argument("--auth", help="require a login, as user:pass")
    p.add_argument("--outputs", default="outputs", help="folder for the saved images (default: outputs/)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        engine = EngineOptions.from_args(args)
    except OptionsError as e:
        sys.exit(str(e))
    runtime.prepare_process(engine.device)
    auth = None
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not sep or not user:
            sys.exit("--auth must be user:pass")
        auth = (user, password)
    try:
        demo, launch = create_studio(StudioOptions(engine=engine, demo=args.demo, outputs=args.outputs))
    except PresetError as e:
        sys.exit(f"Preset files: {e}")
    warning = exposure_warning(args.host, args.share, auth)
    if warning:
        print(warning, file=sys.stderr)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, auth=auth, **launch)


if __name__ == "__main__":
    main()
