"""Cascade Studio: `python app.py [--model PATH | --demo]` serves the studio on 127.0.0.1:7860."""
from __future__ import annotations

import argparse
import os
import sys

from cascade_core.compiling import COMPILE_MODES
from cascade_core.devices import reuse_host_buffers
from ui.app import StudioOptions, create_studio
from ui.hosting import exposure_warning
from ui.model_holder import ModelOptions
from ui.presets import PresetError


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Cascade Studio, a Stable Cascade text-to-image studio.")
    p.add_argument("--model", default=os.environ.get("CASCADE_MODEL", "stabilityai/stable-cascade"),
                   help="hub repository id (downloaded into the Hugging Face cache) or model folder "
                   "(default: $CASCADE_MODEL, else stabilityai/stable-cascade)")
    p.add_argument("--demo", action="store_true", help="offline demo on a tiny built-in model (produces noise)")
    p.add_argument("--variant", default="auto", choices=["auto", "full", "lite"],
                   help="auto: full when it fits the device's free memory, else lite")
    p.add_argument("--weights", default="bf16", choices=["bf16", "fp32"], help="which released files to download")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="float16 keeps Stage C in bfloat16 (it overflows) unless --force-float16")
    p.add_argument("--force-float16", action="store_true", help="run Stage C in float16 too (may give NaN images)")
    p.add_argument("--offload", default="none", choices=["none", "model", "sequential"],
                   help="model: only the running stage on the GPU; sequential: weights streamed per layer")
    p.add_argument("--compile", default="none", choices=COMPILE_MODES,
                   help="torch.compile the denoising steps (GPU: faster steps after a one-time compile, "
                   "cached on disk; README, Speed)")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    p.add_argument("--share", action="store_true", help="create a public gradio.live link")
    p.add_argument("--auth", help="require a login, as user:pass")
    p.add_argument("--outputs", default="outputs", help="folder for the saved images (default: outputs/)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.device in ("auto", "cpu"):
        reuse_host_buffers()  # now, before the server's threads start, so that they all share the one heap
    auth = None
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not sep or not user:
            sys.exit("--auth must be user:pass")
        auth = (user, password)
    model = ModelOptions(path=args.model, demo=args.demo, device=args.device, dtype=args.dtype,
                         variant=args.variant, weights=args.weights, offload=args.offload,
                         force_float16=args.force_float16, compile=args.compile)
    try:
        demo, launch = create_studio(StudioOptions(model=model, outputs=args.outputs))
    except PresetError as e:
        sys.exit(f"Preset files: {e}")
    warning = exposure_warning(args.host, args.share, auth)
    if warning:
        print(warning, file=sys.stderr)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, auth=auth, **launch)


if __name__ == "__main__":
    main()
