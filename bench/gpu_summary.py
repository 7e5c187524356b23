"""The summary `bench/gpu.sh` prints at its end: issue 17's targets against what its JSON files hold.

Run: python -m bench.gpu_summary OUT_DIR
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .floor import _summary

GB = 1e9
# (what, target): the numbers for an H200, bfloat16, 1024², Stage C 20 + Stage B 10 steps
TARGETS = {"one image": 0.9, "four images": 2.4, "first preview": 0.25, "diffusers at 1 image": 2.0,
           ("full", "model"): 8.0, ("lite", "model"): 4.0}


def _load(folder: Path, name: str) -> dict | None:
    path = folder / name
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def floor_lines(floor: dict) -> list[str]:
    lines = [f"model built in {floor.get('model_build_s', float('nan')):.0f} s"]
    sections = floor.get("sections", {})
    lines += [_summary(name, section) for name, section in sections.items()]
    best = [s for name, s in sections.items() if name in ("eager", "graphs", "compiled") and "b1" in s]
    if best:
        b1 = min(s["b1"]["total_s"] for s in best)
        b4 = min(s["b4"]["total_s"] for s in best)
        lines.append(f"TARGET one image ≤ {TARGETS['one image']} s: best {b1:.3f} s; four images ≤ "
                     f"{TARGETS['four images']} s: best {b4:.3f} s")
        previews = [s["first_preview"]["every_5"]["seconds"] for s in best if "every_5" in s.get("first_preview", {})]
        if previews:
            lines.append(f"TARGET first Stage C preview ≤ {TARGETS['first preview']} s: best {min(previews):.3f} s "
                         "(the studio's every 5 steps)")
    if "speedup_vs_diffusers" in sections.get("diffusers", {}):
        lines.append(f"TARGET ≥ {TARGETS['diffusers at 1 image']}x diffusers at 1 image: "
                     f"{sections['diffusers']['speedup_vs_diffusers']['wall']:.2f}x")
    return lines


def offload_lines(offload: dict) -> list[str]:
    lines = []
    for row in offload.get("rows", []):
        target = TARGETS.get((row["variant"], row["offload"]))
        lines.append(f"offload {row['variant']} {row['offload']}: peak {row['peak_allocated_bytes'] / GB:.2f} GB allocated, "
                     f"{row['peak_reserved_bytes'] / GB:.2f} GB reserved, {row['seconds']:.2f} s "
                     f"({'+'.join(map(str, row['steps']))} steps)" + (f"; TARGET ≤ {target} GB" if target else ""))
    return lines


def main(argv=None) -> None:
    folder = Path((argv or sys.argv[1:])[0])
    lines = []
    for name, describe in (("floor.json", floor_lines), ("offload.json", offload_lines)):
        data = _load(folder, name)
        lines += describe(data) if data else [f"{name}: missing"]
    parity = _load(folder, "parity.json")
    lines.append(f"parity bf16 vs fp32: {parity['relative_error']} (ok: {parity['ok']})" if parity else "parity.json: missing")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
