"""Load time and peak host memory: the tiny model, and a full-size Stage C from random weights.

Each case runs in a fresh process and reports the wall time of the load and the process's peak
resident memory (VmHWM, which counts memory-mapped file pages once they are read). The full-size Stage C (3.6B parameters) is written once, with random
bfloat16 weights, to $CASCADE_BENCH_DIR (default /tmp/cascade-bench), 7.2 GB of disk.
Run: python bench/load_memory.py
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = Path(os.environ.get("CASCADE_BENCH_DIR", "/tmp/cascade-bench"))
TINY = ROOT.parent / "shared" / "reference" / "pipeline" / "tiny-cascade"

CHILD = """
import sys, time, torch
sys.path.insert(0, {root!r})
from cascade_core.formats.released_layout import detect_size
from cascade_core.loading import load, load_network
from cascade_core.units import format_bytes

def status(key):
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key + ":"))

peak = lambda: status("VmHWM")

base = peak()
start = time.perf_counter()
{body}
seconds = time.perf_counter() - start
print(f"{{seconds:.2f}} {{base}} {{peak()}} {{status('RssFile')}} {{status('RssAnon')}}")
"""

CASES = {
    "tiny model, all networks + text encoder, float32":
        "load({tiny!r}, device='cpu', dtype='float32')",
    "full Stage C (3.6B), bfloat16 file → bfloat16 (weights stay memory-mapped)":
        "net = load_network(detect_size('stage_c', __import__('pathlib').Path({stage_c!r})), torch.device('cpu'), "
        "torch.bfloat16)",
    "the same, then every weight read once (as the first step does)":
        "net = load_network(detect_size('stage_c', __import__('pathlib').Path({stage_c!r})), torch.device('cpu'), "
        "torch.bfloat16); [p.max() for p in net.parameters()]",
}


def write_full_stage_c(path: Path) -> None:
    """Random bfloat16 weights in the released Stage C layout (written once)."""
    import torch
    from safetensors.torch import save_file

    sys.path.insert(0, str(ROOT))
    from cascade_core.config import PRESETS
    from cascade_core.loading import expected_layout

    generator = torch.Generator().manual_seed(0)
    state = {name: (torch.randn(shape, generator=generator) * 0.02).to(torch.bfloat16)
             for name, shape in expected_layout(PRESETS["stage_c"]["full"]).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))


def main() -> None:
    stage_c = WORK / "stage_c_bf16.safetensors"
    if not stage_c.is_file():
        start = time.perf_counter()
        write_full_stage_c(stage_c)
        print(f"wrote {stage_c} ({stage_c.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - start:.0f} s")
    print("| case | load time | peak host memory (VmHWM) | of which before loading | at the end: file-backed / anonymous |")
    print("|---|---|---|---|---|")
    for name, body in CASES.items():
        code = CHILD.format(root=str(ROOT), body=body.format(tiny=str(TINY), stage_c=str(stage_c)))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        seconds, base, peak, file, anon = out.split()[-5:]
        print(f"| {name} | {float(seconds):.2f} s | {int(peak) / 1e9:.2f} GB | {int(base) / 1e9:.2f} GB | "
              f"{int(file) / 1e9:.2f} GB / {int(anon) / 1e9:.2f} GB |")


if __name__ == "__main__":
    main()
