"""diffusers' layout: the tiny reference cascade converted by diffusers' own code, loaded back by ours.

The oracle test needs diffusers (skipped without it); the rest reads files and configs only.
"""
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

import cascade_core as cc
from cascade_core.config import PRESETS
from cascade_core.formats import diffusers_layout
from tests.cascade_core.formats.helpers import case_errors, same_weights, tiny
from tests.conftest import ROOT, TINY_CASCADE, relative_error

FIXTURE = ROOT / "tests" / "fixtures" / "diffusers_tiny"
BLOCK = {"C": "SDCascadeResBlock", "T": "SDCascadeTimestepBlock", "A": "SDCascadeAttnBlock"}
# scripts/convert_stable_cascade.py's StableCascadeUNet arguments for the released prior and decoder
SCRIPT_PRIOR = dict(
    in_channels=16, out_channels=16, timestep_ratio_embedding_dim=64, patch_size=1, conditioning_dim=2048,
    block_out_channels=[2048, 2048], num_attention_heads=[32, 32], down_num_layers_per_block=[8, 24],
    up_num_layers_per_block=[24, 8], down_blocks_repeat_mappers=[1, 1], up_blocks_repeat_mappers=[1, 1],
    block_types_per_layer=[[BLOCK[x] for x in "CTA"]] * 2, clip_text_in_channels=1280,
    clip_text_pooled_in_channels=1280, clip_image_in_channels=768, clip_seq=4, kernel_size=3, dropout=[0.1, 0.1],
    self_attn=True, timestep_conditioning_type=["sca", "crp"], switch_level=[False])
SCRIPT_DECODER = dict(
    in_channels=4, out_channels=4, timestep_ratio_embedding_dim=64, patch_size=2, conditioning_dim=1280,
    block_out_channels=[320, 640, 1280, 1280], down_num_layers_per_block=[2, 6, 28, 6],
    up_num_layers_per_block=[6, 28, 6, 2], down_blocks_repeat_mappers=[1, 1, 1, 1],
    up_blocks_repeat_mappers=[3, 3, 2, 2], num_attention_heads=[0, 0, 20, 20],
    block_types_per_layer=[[BLOCK[x] for x in level] for level in ("CT", "CT", "CTA", "CTA")],
    clip_text_pooled_in_channels=1280, clip_seq=4, effnet_in_channels=16, pixel_mapper_in_channels=3, kernel_size=3,
    dropout=[0, 0, 0.1, 0.1], self_attn=True, timestep_conditioning_type=["sca"])


def test_the_conversion_scripts_configs_are_the_released_sizes():
    assert diffusers_layout.unet_config(SCRIPT_PRIOR) == PRESETS["stage_c"]["full"]
    assert diffusers_layout.unet_config(SCRIPT_DECODER) == PRESETS["stage_b"]["full"]
    vq = dict(levels=2, bottleneck_blocks=12, embed_dim=384, latent_channels=4, num_vq_embeddings=8192, scale_factor=0.43)
    assert diffusers_layout.vqgan_config(vq) == PRESETS["stage_a"]["full"]


def diffusers_args(official: dict) -> dict:
    """Our tiny cascade.json entry (official names) → StableCascadeUNet's arguments."""
    args = dict(
        in_channels=official["c_in"], out_channels=official["c_out"], timestep_ratio_embedding_dim=official["c_r"],
        patch_size=official["patch_size"], conditioning_dim=official["c_cond"], block_out_channels=official["c_hidden"],
        num_attention_heads=official["nhead"], down_num_layers_per_block=official["blocks"][0],
        up_num_layers_per_block=official["blocks"][1], down_blocks_repeat_mappers=official["block_repeat"][0],
        up_blocks_repeat_mappers=official["block_repeat"][1],
        block_types_per_layer=[[BLOCK[x] for x in level] for level in official["level_config"]],
        clip_seq=official["c_clip_seq"], kernel_size=official["kernel_size"], dropout=official["dropout"],
        self_attn=official["self_attn"], timestep_conditioning_type=official["t_conds"])
    if "c_effnet" in official:
        return {**args, "clip_text_pooled_in_channels": official["c_clip"], "effnet_in_channels": official["c_effnet"],
                "pixel_mapper_in_channels": official["c_pixels"]}
    return {**args, "clip_text_in_channels": official["c_clip_text"],
            "clip_text_pooled_in_channels": official["c_clip_text_pooled"],
            "clip_image_in_channels": official["c_clip_img"], "switch_level": official["switch_level"]}


@pytest.fixture(scope="module")
def diffusers_repos(tmp_path_factory):
    """The tiny cascade as stabilityai/stable-cascade-prior and stabilityai/stable-cascade (diffusers' part) hold it,
    made by diffusers: its single-file conversion, its modules (strict loads) and pipelines' save_pretrained."""
    diffusers = pytest.importorskip("diffusers")
    from diffusers.loaders.single_file_utils import convert_stable_cascade_unet_single_file_to_diffusers
    from diffusers.pipelines.deprecated.wuerstchen import PaellaVQModel
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer

    spec = json.loads((TINY_CASCADE / "cascade.json").read_text())
    unets = {}
    for stage in ("stage_c", "stage_b"):
        unets[stage] = diffusers.StableCascadeUNet(**diffusers_args(spec[stage])).eval()
        unets[stage].load_state_dict(convert_stable_cascade_unet_single_file_to_diffusers(tiny(stage)), strict=True)
    a = spec["stage_a"]
    vqgan = PaellaVQModel(levels=a["levels"], bottleneck_blocks=a["bottleneck_blocks"], embed_dim=a["c_hidden"],
                          latent_channels=a["c_latent"], num_vq_embeddings=a["codebook_size"],
                          scale_factor=a["scale_factor"]).eval()
    stage_a = {k.replace("vquantizer.codebook.", "vquantizer.embedding."): v for k, v in tiny("stage_a").items()}
    vqgan.load_state_dict(stage_a, strict=True)
    text = CLIPTextModelWithProjection.from_pretrained(TINY_CASCADE / "text_encoder")
    tokenizer = CLIPTokenizer.from_pretrained(TINY_CASCADE / "tokenizer")
    root = tmp_path_factory.mktemp("hub")
    prior = diffusers.StableCascadePriorPipeline(tokenizer=tokenizer, text_encoder=text, prior=unets["stage_c"],
                                                 scheduler=diffusers.DDPMWuerstchenScheduler())
    prior.save_pretrained(root / "stable-cascade-prior")
    decoder = diffusers.StableCascadeDecoderPipeline(decoder=unets["stage_b"], tokenizer=tokenizer, text_encoder=text,
                                                     scheduler=diffusers.DDPMWuerstchenScheduler(), vqgan=vqgan)
    decoder.save_pretrained(root / "stable-cascade")
    shutil.copyfile(TINY_CASCADE / "previewer.safetensors", root / "stable-cascade" / "previewer.safetensors")
    return root, unets


def test_diffusers_repositories_load_and_reproduce_the_reference(diffusers_repos, tiny_model, offline):
    root, _ = diffusers_repos
    assert (root / "stable-cascade-prior" / "prior" / "config.json").is_file()
    model = cc.load(root / "stable-cascade", stage_c=str(root / "stable-cascade-prior"), device="cpu", dtype="float32")
    assert same_weights(model, tiny_model, ("stage_c", "stage_b", "stage_a", "previewer"))
    assert model.variant == "tiny"
    assert max(case_errors(model).values()) <= 1e-4


def test_our_networks_compute_what_diffusers_computes(diffusers_repos, tiny_model):
    _, unets = diffusers_repos
    g = torch.Generator().manual_seed(0)
    x, r = torch.randn(2, 16, 5, 7, generator=g), torch.tensor([0.2, 0.7])
    text, pooled, img = torch.randn(2, 77, 32, generator=g), torch.randn(2, 1, 32, generator=g), torch.randn(2, 1, 24, generator=g)
    with torch.no_grad():
        theirs = unets["stage_c"](x, r, clip_text_pooled=pooled, clip_text=text, clip_img=img).sample
        assert relative_error(tiny_model.stage_c(x, r, text, pooled, img), theirs) <= 1e-4
        latent = torch.randn(2, 4, 36, 44, generator=g)
        theirs = unets["stage_b"](latent, r, clip_text_pooled=pooled, effnet=x).sample
        assert relative_error(tiny_model.stage_b(latent, r, x, pooled), theirs) <= 1e-4


def test_one_folder_with_prior_and_decoder_needs_no_option(diffusers_repos, tiny_model, offline, tmp_path):
    root, _ = diffusers_repos
    folder = tmp_path / "both"
    shutil.copytree(root / "stable-cascade", folder)
    with pytest.raises(cc.ModelLoadError, match="diffusers keeps Stage C in stabilityai/stable-cascade-prior: pass its "
                                                "folder with --stage-c"):
        cc.load(folder, device="cpu")
    shutil.copytree(root / "stable-cascade-prior" / "prior", folder / "prior")
    assert same_weights(cc.load(folder, device="cpu", dtype="float32"), tiny_model)


def test_the_preferred_variant_of_the_weights_is_read(tmp_path):
    component = tmp_path / "prior"
    shutil.copytree(FIXTURE / "prior", component)
    plain = component / "diffusion_pytorch_model.safetensors"
    save_file({k: v.bfloat16() for k, v in load_file(plain).items()}, str(component / "diffusion_pytorch_model.bf16.safetensors"))
    assert diffusers_layout.weight_files(component, "bf16") == [component / "diffusion_pytorch_model.bf16.safetensors"]
    assert diffusers_layout.weight_files(component, "fp32") == [plain]


def test_a_missing_shard_and_pickles_only_are_refused(tmp_path):
    component = tmp_path / "decoder"
    shutil.copytree(FIXTURE / "decoder", component)
    (component / "diffusion_pytorch_model-00002-of-00004.safetensors").unlink()
    with pytest.raises(cc.ModelLoadError, match="lacks diffusion_pytorch_model-00002-of-00004.safetensors, which its "
                                                "index lists"):
        diffusers_layout.network("stage_b", component)
    for path in component.glob("diffusion_pytorch_model*"):
        path.unlink()
    (component / "diffusion_pytorch_model.bin").write_bytes(b"a pickle")
    with pytest.raises(cc.ModelLoadError, match="never .bin archives of torch.save"):
        diffusers_layout.network("stage_b", component)


def test_a_network_of_the_wrong_kind_is_named(tmp_path):
    shutil.copytree(FIXTURE / "decoder", tmp_path / "prior")
    with pytest.raises(cc.ModelLoadError, match=r"prior holds a Stage B network \(by its config.json\), not stage_c"):
        diffusers_layout.network("stage_c", tmp_path / "prior")
