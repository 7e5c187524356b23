"""Conformance runner: every case of a folder laid out like ../shared/reference, through the engine.

    python tests/reference_runner.py REF_DIR [--weights-root DIR]

It finds `pipeline/cases.json` (text → image, end to end), `extras/{img2img,image_variation,
controlnet}/cases.json` (Stage C with pictures) and `extras/lora/cases.json` (Stage C with a LoRA in
both file layouts, and the request with its trained token), builds one model folder from
`pipeline/tiny-cascade` with a `cascade.json` that names the extra networks and a LoRA folder
(weight paths relative to --weights-root, default REF_DIR), runs each case through
`cascade_core.generate` as the CLI and the studio do (the LoRA forward cases through the merged
Stage C, the LoRA request's steps through the sampler as well), and prints each case's worst
relative error. Exit status 1 when one is past the reference README's
tolerances (relative 1e-4 for tensors, max |Δ| 1e-3 for images in [0, 1]).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import cascade_core as cc  # noqa: E402
from cascade_core import sampling  # noqa: E402
from cascade_core.pipeline import STAGE_C_SHIFT  # noqa: E402
from cascade_core.picture import Picture  # noqa: E402
from transformers.utils import logging as transformers_logging  # noqa: E402

RELATIVE, IMAGE_MAX = 1e-4, 1e-3
CONTROLS = {"canny": "canny", "inpainting": "inpaint", "sr": "upscale"}
CONTROLNETS = {"canny": "controlnet_canny", "inpainting": "controlnet_inpainting", "sr": "controlnet_super_resolution"}
BOTTLENECKS = {"effnet": "effnet", "sr_tiny": "large", "simple": "simple"}


@dataclass(frozen=True)
class Outcome:
    case: str
    worst: float  # the largest relative error over the case's tensors
    image_max: float  # max |Δ| of the image, for end-to-end cases (0 otherwise)

    @property
    def passed(self) -> bool:
        return self.worst <= RELATIVE and self.image_max <= IMAGE_MAX


def relative_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    if ours.shape != ref.shape:
        return float("inf")
    return ((ours.double() - ref.double()).norm() / ref.double().norm()).item()


def model_folder(ref_dir: Path, weights_root: Path, into: Path) -> Path:
    """tiny-cascade's files beside a cascade.json that also names the extra networks (README, extras/)."""
    tiny = ref_dir / "pipeline" / "tiny-cascade"
    folder = into / "model"
    shutil.copytree(tiny, folder, symlinks=True)
    spec = json.loads((tiny / "cascade.json").read_text())
    extras = {"effnet_encoder": {"file": str(weights_root / "extras" / "effnet" / "effnet_encoder.safetensors")},
              "image_encoder": {"folder": str(ref_dir / "extras" / "image_variation" / "clip_vision")}}
    controlnets = json.loads((ref_dir / "extras" / "controlnet" / "controlnet.json").read_text())["controlnets"]
    for kind, name in CONTROLNETS.items():
        entry = controlnets[kind]
        args = {"c_in": entry["c_in"], "c_proj": entry["c_proj"], "proj_blocks": entry["proj_blocks"],
                "bottleneck_mode": BOTTLENECKS[entry["kind"]]}
        if "widths" in entry:
            args["widths"] = entry["widths"]
        extras[name] = {"file": str(_complete(weights_root, entry, into / f"{name}.safetensors")), "args": args}
    (folder / "cascade.json").unlink()
    (folder / "cascade.json").write_text(json.dumps({**spec, "extras": extras}))
    return folder


def _complete(weights_root: Path, entry: dict, out: Path) -> Path:
    """A tiny ControlNet file with every tensor: the reference stores only the ones that differ from the
    EfficientNet encoder's (`overlay_on`)."""
    tensors = load_file(weights_root / entry["file"])
    if "overlay_on" in entry:
        base = {k: v for k, v in load_file(weights_root / entry["overlay_on"]).items() if k.startswith("backbone.")}
        tensors = {**base, **tensors}
    save_file({k: v.float() for k, v in tensors.items()}, str(out))
    return out


def _finished(model, request: cc.GenerationRequest, stage_c_only: bool) -> cc.Finished:
    events = list(cc.generate(model, request, keep_tensors=True, stage_c_only=stage_c_only, preview_every=0,
                              decode_every=0))
    assert isinstance(events[-1], cc.Finished), events[-1]
    return events[-1]


def pipeline_cases(model, ref_dir: Path):
    folder = ref_dir / "pipeline"
    for case in json.loads((folder / "cases.json").read_text()):
        ref = load_file(folder / case["file"])
        request = cc.GenerationRequest(**{k: case[k] for k in (
            "prompt", "negative_prompt", "seed", "width", "height", "prior_steps", "prior_guidance",
            "decoder_steps", "decoder_guidance")})
        done = _finished(model, request, stage_c_only=False)
        worst = max(relative_error(done.tensors[k], ref[k]) for k in ("latent_c", "preview", "latent_b", "image"))
        image_max = (done.tensors["image"] - ref["image"]).abs().max().item()
        yield Outcome(f"pipeline/{case['file']}", worst, image_max)


def _stage_c_request(case: dict, **pictures) -> cc.GenerationRequest:
    follows = pictures.get("control") == "inpaint"  # the size follows the picture (and may be under 256 px)
    sizes = {k: case[k] for k in ("width", "height") if k in case and not follows}
    return cc.GenerationRequest(prompt=case["prompt"], negative_prompt=case["negative_prompt"], seed=case["seed"],
                                prior_steps=case["steps"], prior_guidance=case["guidance"], **sizes, **pictures)


def _picture(ref: dict) -> Picture:
    return Picture(ref["image_u8"].numpy())


def extras_cases(model, ref_dir: Path):
    cases = {
        "img2img": lambda case, ref: dict(init_image=_picture(ref), strength=case["noise_level"],
                                          image_size=case["resize"]),
        "image_variation": lambda case, ref: dict(image_prompt=_picture(ref), image_size=case["resize"]),
        "controlnet": _control_pictures,
    }
    for feature, pictures in cases.items():
        folder = ref_dir / "extras" / feature
        if not (folder / "cases.json").is_file():
            continue
        for case in json.loads((folder / "cases.json").read_text()):
            ref = load_file(folder / case["file"])
            done = _finished(model, _stage_c_request(case, **pictures(case, ref)), stage_c_only=True)
            yield Outcome(f"extras/{feature}/{case['file']}", relative_error(done.tensors["latent_c"], ref["latent_c"]),
                          0.0)


def _control_pictures(case: dict, ref: dict) -> dict:
    control = CONTROLS[case["filter"]]
    pictures = dict(control=control, control_image=_picture(ref), control_scale=case["cnet_multiplier"])
    if control == "canny":
        pictures["image_size"] = case["resize"]
    if control == "inpaint":
        mask = (ref["mask"][0, 0].numpy()[..., None] * 255).astype("uint8").repeat(3, axis=2)  # (H, W, 3): white repaints
        pictures.update(mask=Picture(mask), image_size=case["resize"], strength=case["noise_level"])
    return pictures


def lora_folder(ref_dir: Path, weights_root: Path, into: Path) -> Path:
    """The reference LoRA in both layouts, and the official one's train_tokens beside it (NAME.json), which
    the official config holds and its file does not (an empty folder for a reference without extras/lora)."""
    folder = into / "loras"
    folder.mkdir()
    if not (ref_dir / "extras" / "lora" / "lora.json").is_file():
        return folder
    spec = json.loads((ref_dir / "extras" / "lora" / "lora.json").read_text())
    for name in ("lora_tiny.safetensors", spec["kohya_file"]):
        shutil.copy(weights_root / "extras" / "lora" / name, folder / name)
    (folder / "lora_tiny.json").write_text(json.dumps({"train_tokens": spec["train_tokens"]}))
    return folder


def lora_cases(model, ref_dir: Path):
    folder = ref_dir / "extras" / "lora"
    if not (folder / "cases.json").is_file():
        return
    cases, spec = json.loads((folder / "cases.json").read_text()), json.loads((folder / "lora.json").read_text())
    ref = load_file(folder / "lora.io.safetensors")
    use = lambda *loras: model.loras.use(loras, model.stage_c, model.text_encoder, model.placement)
    try:
        for layout, name in (("official", "lora_tiny"), ("kohya", spec["kohya_file"].removesuffix(".safetensors"))):
            use((name, 1.0))
            for k in range(cases["forward_cases"]):
                with torch.inference_mode():
                    out = model.stage_c(*(ref[f"{k}.{n}"] for n in ("x", "r", "clip_text", "clip_text_pooled",
                                                                        "clip_img")))
                yield Outcome(f"extras/lora/lora.io.safetensors {k}.out ({layout} layout)",
                              relative_error(out, ref[f"{k}.out"]), 0.0)
        yield Outcome("extras/lora/lora.io.safetensors request (trained token)", _lora_request(model, cases["request"],
                                                                                              ref), 0.0)
    finally:
        use()


@torch.inference_mode()
def _lora_request(model, case: dict, ref: dict) -> float:
    """The worst relative error of the request's input ids (exact or inf), text tensors, x and x0 of every
    step, and latent_c."""
    request = cc.GenerationRequest(prompt=case["prompt"], negative_prompt=case["negative_prompt"], seed=case["seed"],
                                   width=case["width"], height=case["height"], prior_steps=case["steps"],
                                   prior_guidance=case["guidance"], loras=(("lora_tiny", 1.0),))
    errors = [relative_error(_finished(model, request, stage_c_only=True).tensors["latent_c"], ref["request.latent_c"])]
    text, negative = model.text_encoder(case["prompt"]), model.text_encoder(case["negative_prompt"])
    for label, embedding in (("", text), ("negative_", negative)):
        same = torch.equal(embedding.input_ids, ref[f"request.{label}input_ids"])
        errors += [0.0 if same else float("inf"),
                   relative_error(embedding.clip_text, ref[f"request.{label}clip_text"]),
                   relative_error(embedding.clip_text_pooled, ref[f"request.{label}clip_text_pooled"])]
    for i, (x, x0) in enumerate(stage_c_trajectory(model, text, negative, case)):
        errors += [relative_error(x, ref["request.x"][i]), relative_error(x0, ref["request.x0"][i])]
    return max(errors)


def stage_c_trajectory(model, text, negative, case: dict):
    """Stage C's (x, x0) at each step of a text request, run by the official loop from the given prompt
    embeddings (`case`: seed, steps, guidance, latent_shape as the reference's settings name them)."""
    net = model.stage_c
    clip_img = torch.zeros(1, 1, net.config.c_clip_img)
    cond = {"clip_text": text.clip_text, "clip_text_pooled": text.clip_text_pooled, "clip_img": clip_img}
    uncond = {"clip_text": negative.clip_text, "clip_text_pooled": negative.clip_text_pooled, "clip_img": clip_img}
    denoise = sampling.guided(SimpleNamespace(prepare=net.prepare, step=net.step), cond, uncond, case["guidance"])
    draw = partial(sampling.draw_noise, [torch.Generator().manual_seed(case["seed"])], case["latent_shape"][1:])
    return sampling.ddpm_sample(denoise, draw(), sampling.cosine_schedule(case["steps"], STAGE_C_SHIFT), draw)


def run(ref_dir: Path, weights_root: Path) -> list[Outcome]:
    with tempfile.TemporaryDirectory() as tmp:
        model = cc.load(model_folder(ref_dir, weights_root, Path(tmp)), device="cpu", dtype="float32",
                        lora_dir=str(lora_folder(ref_dir, weights_root, Path(tmp))))
        return [*pipeline_cases(model, ref_dir), *extras_cases(model, ref_dir), *lora_cases(model, ref_dir)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ref_dir", type=Path)
    parser.add_argument("--weights-root", type=Path, help="where the JSON files' weight paths start (default REF_DIR)")
    args = parser.parse_args(argv)
    transformers_logging.disable_progress_bar()
    outcomes = run(args.ref_dir.resolve(), (args.weights_root or args.ref_dir).resolve())
    for outcome in outcomes:
        image = f", image max |Δ| {outcome.image_max:.1e}" if outcome.image_max else ""
        print(f"{'ok  ' if outcome.passed else 'FAIL'} {outcome.case}: worst relative error {outcome.worst:.1e}{image}")
    failed = sum(not o.passed for o in outcomes)
    print(f"{len(outcomes) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
