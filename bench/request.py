"""A whole request, ours (`cascade_core.generate`) against diffusers' prior and decoder pipelines.

Both get the same networks' weights and the same text encoder object; ours runs with no
intermediate previews so that both do the same work: text (each prompt encoded once: diffusers' decoder
gets the prior's embeddings, as their combined pipeline hands them on), Stage C, Stage B, Stage A.
"""
from __future__ import annotations

import statistics
from pathlib import Path

import torch

from cascade_core import generate, load_demo, runtime
from cascade_core.events import Finished, StageProgress
from cascade_core.model import CascadeModel
from cascade_core.request import GenerationRequest

from . import measure
from .networks import diffusers_twin, random_network, random_text_encoder, variant_network

TOKENIZER = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "pipeline" / "tiny-cascade" / "tokenizer"
PROMPT = "a photograph of a red fox in the snow"


def random_model(variant: str, dtype: torch.dtype, device: torch.device, tokenizer=TOKENIZER,
                 compile: str = "none", buffer_reuse: bool = True) -> CascadeModel:
    """A CascadeModel of the variant's architectures with random weights (Stage A and previewer: the released
    ones); `tiny` is the demo model."""
    if variant == "tiny":
        return load_demo(str(device), compile)
    nets = {stage: random_network(variant_network(stage, variant if stage.startswith(("stage_c", "stage_b")) else "full"),
                                  dtype, device, seed=k)
            for k, stage in enumerate(("stage_c", "stage_b", "stage_a", "previewer"))}
    applied = runtime.apply(nets, device, compile=compile, host_buffer_reuse=buffer_reuse)
    return CascadeModel(name=f"random {variant}", **nets, text_encoder=random_text_encoder(dtype, device, tokenizer),
                        device=device, dtype=dtype, variant=variant, runtime=applied)


def ours(model: CascadeModel, request: GenerationRequest, prompts_kept: bool = False) -> dict:
    """Seconds of each stage and the median step of Stage C and Stage B, from one run's events.

    prompts_kept: leave the text encoder's kept embeddings, as a studio's variations of a prompt
    find them; else forget them first, so that the request does all that diffusers' does."""
    if not prompts_kept:
        model.text_encoder.forget()
    steps = {"stage_c": [], "stage_b": []}
    last = {}
    for event in generate(model, request, preview_every=0, decode_every=0):
        if isinstance(event, StageProgress):
            steps[event.stage].append(event.elapsed - last.get(event.stage, event.elapsed))
            last[event.stage] = event.elapsed
        if isinstance(event, Finished):
            timings = dict(event.timings)
    for stage, times in steps.items():
        timings[f"{stage}_step"] = statistics.median(times[1:] or [float("nan")])  # first: no start mark
    return timings


def diffusers_pipelines(model: CascadeModel):
    """diffusers' StableCascadePriorPipeline and StableCascadeDecoderPipeline on the same weights."""
    from diffusers import DDPMWuerstchenScheduler, StableCascadeDecoderPipeline, StableCascadePriorPipeline
    from diffusers.pipelines.deprecated.wuerstchen import PaellaVQModel

    text = model.text_encoder
    text.tokenizer.model_max_length = 77  # diffusers pads to it; the demo tokenizer leaves it unset
    prior = StableCascadePriorPipeline(tokenizer=text.tokenizer, text_encoder=text.model,
                                       prior=diffusers_twin(model.stage_c), scheduler=DDPMWuerstchenScheduler())
    vqgan = PaellaVQModel(scale_factor=model.stage_a.config.scale_factor).to(model.device, model.dtype)
    decoder = StableCascadeDecoderPipeline(decoder=diffusers_twin(model.stage_b), tokenizer=text.tokenizer,
                                           text_encoder=text.model, scheduler=DDPMWuerstchenScheduler(), vqgan=vqgan)
    for pipe in (prior, decoder):
        pipe.set_progress_bar_config(disable=True)
    return prior, decoder


def theirs(prior, decoder, request: GenerationRequest) -> None:
    """diffusers' request as their StableCascadeCombinedPipeline runs it: the prior encodes the prompts, and the
    decoder is handed the prior's text embeddings instead of the prompts, so the text is encoded once, as ours."""
    generator = torch.Generator().manual_seed(request.seed)
    out = prior(prompt=request.prompt, negative_prompt=request.negative_prompt, width=request.width,
                height=request.height, num_inference_steps=request.prior_steps,
                guidance_scale=request.prior_guidance, num_images_per_prompt=request.num_images,
                generator=generator, output_type="pt")
    text = {k: out.get(k) for k in ("prompt_embeds", "prompt_embeds_pooled", "negative_prompt_embeds",
                                    "negative_prompt_embeds_pooled")}
    decoder(image_embeddings=out.image_embeddings, **text,
            prompt=request.prompt if text["prompt_embeds"] is None else None,  # as the combined pipeline passes them
            negative_prompt=request.negative_prompt if text["negative_prompt_embeds"] is None else None,
            num_inference_steps=request.decoder_steps, guidance_scale=request.decoder_guidance,
            generator=generator, output_type="pt")


@torch.inference_mode()
def compare_request(model: CascadeModel, request: GenerationRequest, repeats: int, with_diffusers: bool,
                    warmup: int = 1) -> dict:
    """Our stage timings (medians over `repeats`) and, interleaved with them, our request again with the
    prompts' embeddings kept from the run before (`ours_prompts_kept`) and diffusers' whole request."""
    runs, kept = [], []
    calls = {"ours": lambda: runs.append(ours(model, request)),
             "ours_prompts_kept": lambda: kept.append(ours(model, request, prompts_kept=True))}
    if with_diffusers:
        prior, decoder = diffusers_pipelines(model)
        calls["diffusers"] = lambda: theirs(prior, decoder, request)
    measure.reset_peak_memory(model.device)
    times = measure.interleaved(calls, model.device, repeats, warmup)
    medians = lambda runs: {k: statistics.median(run[k] for run in runs[warmup:]) for k in runs[-1]}
    result = {"stages": medians(runs), "stages_prompts_kept": medians(kept), "times": times,
              "peak_memory_bytes": measure.peak_memory_bytes(model.device)}
    if with_diffusers:
        result["speedup_vs_diffusers"] = measure.speedups(times)
        result["speedup_vs_diffusers_prompts_kept"] = measure.speedups(times, ours="ours_prompts_kept")
    return result
