"""LoRA for Stage C (../shared/reference/extras/lora): both file layouts at reference parity, the trained
token, merging and removing bit for bit (with the CPU layers runtime.apply swaps in), several LoRAs with
strengths, the request field, the hub, and files that do not fit."""
import json
import os
import shutil
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file, save_file

import cascade_core as cc
from cascade_core import lora as lora_module
from cascade_core.lora import available, resolve
from cascade_core.lora_files import KOHYA, OFFICIAL, detect_layout, official_targets
from tests.conftest import REFERENCE, TINY_CASCADE, relative_error
from tests.reference_runner import stage_c_trajectory

LORA = REFERENCE / "extras" / "lora"
SPEC = json.loads((LORA / "lora.json").read_text())
CASE = json.loads((LORA / "cases.json").read_text())
IO = load_file(LORA / "lora.io.safetensors")
FILES = {OFFICIAL: "lora_tiny", KOHYA: "lora_tiny_kohya"}
PROBE = "down_blocks.0.2.attention.attn.in_proj_weight"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A LoRA folder: the reference's two files, and the official one's train_tokens beside it (NAME.json)."""
    folder = tmp_path_factory.mktemp("loras")
    for name in FILES.values():
        shutil.copy(LORA / f"{name}.safetensors", folder)
    (folder / "lora_tiny.json").write_text(json.dumps({"train_tokens": SPEC["train_tokens"]}))
    return folder


@pytest.fixture(scope="module")
def model(folder):
    return cc.load(TINY_CASCADE, device="cpu", dtype="float32", lora_dir=str(folder))


@pytest.fixture(scope="module")
def base(model):
    """The model's own weights and text encoder pieces, before any LoRA."""
    encoder = model.text_encoder
    return SimpleNamespace(stage_c={k: v.clone() for k, v in model.stage_c.state_dict().items()},
                           text={k: v.clone() for k, v in encoder.model.state_dict().items()},
                           tokenizer=encoder.tokenizer, embedding=encoder.model.get_input_embeddings())


@pytest.fixture(autouse=True)
def no_lora_after(request):
    yield
    if "model" in request.fixturenames:
        use(request.getfixturevalue("model"), ())


def use(model, loras, placement=None):
    return model.loras.use(loras, model.stage_c, model.text_encoder, placement or model.placement)


@torch.inference_mode()
def forward(model, k: int) -> torch.Tensor:
    return model.stage_c(*(IO[f"{k}.{name}"] for name in ("x", "r", "clip_text", "clip_text_pooled", "clip_img")))


def same_as_base(model, base) -> bool:
    encoder = model.text_encoder
    return (all(torch.equal(v, base.stage_c[k]) for k, v in model.stage_c.state_dict().items())
            and all(torch.equal(v, base.text[k]) for k, v in encoder.model.state_dict().items())
            and encoder.tokenizer is base.tokenizer and encoder.model.get_input_embeddings() is base.embedding)


def test_layouts_are_told_apart_by_tensor_names():
    official, kohya = (list(load_file(LORA / f"{n}.safetensors")) for n in FILES.values())
    assert detect_layout(official) == OFFICIAL and detect_layout(kohya) == KOHYA
    assert detect_layout(["lora_unet_down_blocks_0_2_attention_attn_to_q.lora_A.weight",
                          "diffusion_model.down_blocks.0.2.attention.attn.out_proj.lora_B.weight"]) == KOHYA
    assert detect_layout(["weights.0.lora_down", "something.else"]) is None
    assert detect_layout(["lora_prior_unet_x.hada_w1_a"]) is None  # LoHa: not a LoRA
    assert detect_layout(["embeddings.embeddings", "embeddings.indices"]) is None  # a token, no weights


def test_official_targets_follow_the_file_order(model):
    assert official_targets(model.stage_c) == SPEC["targets"]


@pytest.mark.parametrize("layout", FILES)
def test_forward_matches_the_reference_in_both_layouts(model, base, layout):
    assert model.runtime.cpu_products  # the oneDNN twins of runtime.apply run the products
    use(model, ((FILES[layout], 1.0),))
    assert torch.equal(model.stage_c.get_parameter(PROBE), IO[f"merged.{PROBE}"])  # the official arithmetic
    for k in range(CASE["forward_cases"]):
        assert relative_error(forward(model, k), IO[f"{k}.out"]) <= 1e-4
    use(model, ())
    assert same_as_base(model, base)
    assert relative_error(forward(model, 0), IO["0.out"]) > 1e-3  # the LoRA matters


def test_merging_under_the_cpu_layers_uses_the_new_weights_and_removing_gives_the_same_bits(model, base):
    """The oneDNN products keep nothing derived from the weights: after a merge, the step equals a freshly
    loaded network holding the merged weights; after removal, the base network's, bit for bit."""
    before = forward(model, 0)
    use(model, (("lora_tiny", 0.7), ("lora_tiny_kohya", -0.2)))
    merged = forward(model, 0)
    fresh = cc.load(TINY_CASCADE, device="cpu", dtype="float32")
    fresh.stage_c.load_state_dict(model.stage_c.state_dict())
    assert torch.equal(forward(fresh, 0), merged) and not torch.equal(merged, before)
    use(model, ())
    assert torch.equal(forward(model, 0), before) and same_as_base(model, base)


def test_strengths_add_and_the_listed_order_changes_no_bit(model, base):
    use(model, (("lora_tiny", 0.5), ("lora_tiny_kohya", 0.25)))
    both = model.stage_c.get_parameter(PROBE).clone()
    use(model, (("lora_tiny_kohya", 0.25), ("lora_tiny", 0.5)))
    assert torch.equal(model.stage_c.get_parameter(PROBE), both)
    use(model, (("lora_tiny", 0.75),))  # the same LoRA in the other layout: the strengths add up
    assert relative_error(both, model.stage_c.get_parameter(PROBE)) <= 1e-6
    update = IO[f"merged.{PROBE}"] - base.stage_c[PROBE]
    assert relative_error(both - base.stage_c[PROBE], 0.75 * update) <= 1e-5


def test_strength_zero_is_the_base_model(model, base):
    assert use(model, (("lora_tiny", 0.0),)) == ()
    assert same_as_base(model, base) and model.loras.merged == ()


def test_the_same_set_is_merged_once_and_a_replaced_file_again(model, folder, monkeypatch):
    reads, read = [], lora_module.read_lora
    monkeypatch.setattr(lora_module, "read_lora", lambda path: reads.append(path) or read(path))
    use(model, (("lora_tiny", 1.0),))
    use(model, (("lora_tiny", 1.0),))
    assert len(reads) == 1
    os.utime(folder / "lora_tiny.safetensors", ns=(0, 10**18))  # another modification time: another file
    use(model, (("lora_tiny", 1.0),))
    assert len(reads) == 2


@torch.inference_mode()
def test_the_trained_token_request_matches_the_reference(model, base):
    """The notebook's request with `[fernando]`: input ids, text tensors, every step's x and x0, latent_c."""
    settings = CASE["request"]
    request = cc.GenerationRequest(prompt=settings["prompt"], negative_prompt=settings["negative_prompt"],
                                   width=settings["width"], height=settings["height"], seed=settings["seed"],
                                   prior_steps=settings["steps"], prior_guidance=settings["guidance"],
                                   loras=(("lora_tiny", 1.0),))
    events = list(cc.generate(model, request, keep_tensors=True, stage_c_only=True, preview_every=0))
    assert relative_error(events[-1].tensors["latent_c"], IO["request.latent_c"]) <= 1e-4
    text, negative = model.text_encoder(settings["prompt"]), model.text_encoder(settings["negative_prompt"])
    assert torch.equal(text.input_ids, IO["request.input_ids"]) and SPEC["new_token_ids"][0] in text.input_ids
    assert torch.equal(negative.input_ids, IO["request.negative_input_ids"])
    for name, ours in (("clip_text", text.clip_text), ("clip_text_pooled", text.clip_text_pooled),
                       ("negative_clip_text", negative.clip_text),
                       ("negative_clip_text_pooled", negative.clip_text_pooled)):
        assert relative_error(ours, IO[f"request.{name}"]) <= 1e-4, name
    embedding = model.text_encoder.model.get_input_embeddings()
    assert torch.equal(embedding(torch.tensor([49406, 49407, 49408])), IO["merged.token_embedding.weight_tail"])

    for i, (x, x0) in enumerate(stage_c_trajectory(model, text, negative, settings)):
        assert relative_error(x, IO["request.x"][i]) <= 1e-4, f"x at step {i}"
        assert relative_error(x0, IO["request.x0"][i]) <= 1e-4, f"x0 at step {i}"

    use(model, ())
    assert same_as_base(model, base) and len(model.text_encoder.tokenizer) == 49408
    assert SPEC["new_token_ids"][0] not in model.text_encoder(settings["prompt"]).input_ids  # `[fernando]`: text


def test_without_train_tokens_the_weights_apply_and_a_notice_says_why_the_token_does_not(model, base, tmp_path):
    shutil.copy(LORA / "lora_tiny.safetensors", tmp_path)
    notices = use(model, ((str(tmp_path / "lora_tiny.safetensors"), 1.0),))
    assert len(notices) == 1 and "lora_tiny.json" in notices[0] and "train_tokens" in notices[0]
    assert torch.equal(model.stage_c.get_parameter(PROBE), IO[f"merged.{PROBE}"])
    assert model.text_encoder.tokenizer is base.tokenizer


def test_a_text_encoder_lora_merges_into_it_and_forgets_kept_prompts(model, base, tmp_path):
    name = "lora_prior_te_text_model_encoder_layers_0_mlp_fc1"
    target = "text_model.encoder.layers.0.mlp.fc1.weight"
    out, inp = base.text[target].shape
    down, up = torch.randn(2, inp), torch.randn(out, 2)
    save_file({f"{name}.lora_down.weight": down, f"{name}.lora_up.weight": up, f"{name}.alpha": torch.tensor(1.0)},
              str(tmp_path / "te.safetensors"))
    model.text_encoder("a fox")
    use(model, ((str(tmp_path / "te.safetensors"), 2.0),))
    assert model.text_encoder.cached("a fox") is None
    merged = model.text_encoder.model.get_parameter(target)
    assert relative_error(merged - base.text[target], 2.0 * 0.5 * up @ down) <= 1e-6
    use(model, ())
    assert same_as_base(model, base)


def test_offloaded_host_copies_are_merged_and_restored_too(model, base):
    """With --offload model a resident network also has a host copy that the next stage switch brings back."""
    params = list(model.stage_c.parameters())
    host = [p.detach().clone() for p in params]
    placement = SimpleNamespace(host={"stage_c": host})
    index = next(i for i, p in enumerate(params) if p is model.stage_c.get_parameter(PROBE))
    use(model, (("lora_tiny", 1.0),), placement)
    assert torch.equal(host[index], IO[f"merged.{PROBE}"])
    use(model, (), placement)
    assert torch.equal(host[index], base.stage_c[PROBE]) and same_as_base(model, base)


def test_names_resolve_in_the_folder_as_paths_and_otherwise_say_what_is_there(folder, tmp_path):
    assert resolve("lora_tiny", folder) == (folder / "lora_tiny.safetensors").resolve()
    assert resolve(str(folder / "lora_tiny_kohya.safetensors"), tmp_path) == (folder / "lora_tiny_kohya.safetensors")
    with pytest.raises(cc.RequestError) as error:
        resolve("nothing_here", folder)
    assert error.value.field == "loras" and "lora_tiny, lora_tiny_kohya" in str(error.value)


def test_a_hub_name_is_fetched_into_the_cache(fake_hub, folder, tmp_path):
    fake_hub.others["tester/loras"] = {"style/lora_tiny.safetensors": (LORA / "lora_tiny.safetensors").read_bytes()}
    path = resolve("tester/loras/style/lora_tiny.safetensors", tmp_path / "empty")
    assert path.read_bytes() == (LORA / "lora_tiny.safetensors").read_bytes() and str(tmp_path / "cache") in str(path)
    with pytest.raises(cc.ModelLoadError, match="tester/loras has no other.safetensors: check the file's path"):
        resolve("tester/loras/other.safetensors", tmp_path / "empty")


def test_the_folder_is_listed_for_a_picker(folder, tmp_path):
    listed = {info.name: info for info in available(folder)}
    assert listed["lora_tiny"].layout == OFFICIAL and listed["lora_tiny"].tokens == ("[fernando]",)
    assert listed["lora_tiny_kohya"].layout == KOHYA and listed["lora_tiny_kohya"].tokens == ()
    assert listed["lora_tiny"].bytes == (LORA / "lora_tiny.safetensors").stat().st_size
    (tmp_path / "sub").mkdir()
    shutil.copy(LORA / "lora_tiny_kohya.safetensors", tmp_path / "sub")
    (tmp_path / "broken.safetensors").write_bytes(b"not a file")
    shutil.copy(TINY_CASCADE / "previewer.safetensors", tmp_path)
    listed = {info.name: info for info in available(tmp_path)}
    assert listed["sub/lora_tiny_kohya"].layout == KOHYA
    assert listed["broken"].problem.startswith("not a readable safetensors file")
    assert listed["previewer"].problem == "not a Stage C LoRA in a known layout"
    assert available(tmp_path / "missing") == []


@pytest.mark.parametrize("loras, message", [
    ((("x", 5.0),), "the strength of 'x' is 5.0, outside ±4"),
    ((("x", float("nan")),), "the strength of 'x' must be a finite number"),
    ((("x", 1.0), ("x ", 0.5)), "'x' is listed twice"),
    ((("", 1.0),), "each LoRA is a (name, strength) pair"),
    ("x", "must be a list of at most 8 (name, strength) pairs"),
    ((("x", True),), "the strength of 'x' must be a finite number"),
])
def test_the_request_field_is_checked_at_the_boundary(loras, message):
    with pytest.raises(cc.RequestError) as error:
        cc.GenerationRequest("a fox", loras=loras).validated()
    assert error.value.field == "loras" and message in str(error.value)


def test_the_settings_record_the_loras():
    loras = (("style", 1), ("owner/repo/x.safetensors", -0.5))
    request, _ = cc.GenerationRequest("a fox", seed=1, loras=loras).validated()
    assert request.loras == (("style", 1.0), ("owner/repo/x.safetensors", -0.5))
    settings = request.to_dict()
    assert settings["loras"] == [["style", 1.0], ["owner/repo/x.safetensors", -0.5]]
    json.dumps(settings)


def _official_with(tmp_path, change) -> str:
    tensors = load_file(LORA / "lora_tiny.safetensors")
    change(tensors)
    save_file(tensors, str(tmp_path / "changed.safetensors"))
    return str(tmp_path / "changed.safetensors")


@pytest.mark.parametrize("make, message", [
    (lambda p: _official_with(p, lambda t: t.update({"weights.1.lora_up": torch.zeros(96, 4)})),
     r"weights\.1 \(up \[96, 4\], down \[4, 64\]\) does not fit stage_c down_blocks\.0\.2\.attention\.attn\."
     r"in_proj_weight \[192, 64\]: the file was made for another network"),
    (lambda p: _official_with(p, lambda t: [t.pop(f"weights.15.lora_{h}") for h in ("down", "up")]),
     r"holds 15 LoRA weights; this model's Stage C has 16 attention projections"),
    (lambda p: _official_with(p, lambda t: t.pop("weights.3.lora_up")), r"lacks weights\.3\.lora_up"),
    (lambda p: _official_with(p, lambda t: t.update({"embeddings.embeddings": torch.zeros(1, 1280)})),
     r"embeddings\.embeddings rows are 1280 wide; this text encoder's tokens are 32 wide"),
    (lambda p: str(TINY_CASCADE / "stage_c.safetensors"), r"is not a Stage C LoRA in a layout this engine knows"),
])
def test_a_file_that_does_not_fit_is_refused_naming_it_and_the_model_is_unchanged(model, base, tmp_path, make, message):
    path = make(tmp_path)
    use(model, (("lora_tiny_kohya", 1.0),))
    with pytest.raises(cc.ModelLoadError, match=message) as error:
        use(model, ((path, 1.0),))
    assert os.path.basename(path) in str(error.value)
    assert torch.equal(model.stage_c.get_parameter(PROBE), IO[f"merged.{PROBE}"])  # the earlier set is still merged
    use(model, ())
    assert same_as_base(model, base)


def test_a_truncated_file_and_a_kohya_file_for_another_network_are_refused(model, tmp_path):
    data = (LORA / "lora_tiny.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(cc.ModelLoadError, match=r"cut\.safetensors is not a readable safetensors file .*download it"):
        use(model, ((str(tmp_path / "cut.safetensors"), 1.0),))
    sdxl = "lora_unet_input_blocks_1_1_proj_in"
    save_file({f"{sdxl}.lora_down.weight": torch.zeros(4, 8), f"{sdxl}.lora_up.weight": torch.zeros(8, 4)},
              str(tmp_path / "sdxl.safetensors"))
    with pytest.raises(cc.ModelLoadError, match=r"sdxl\.safetensors: lora_unet_input_blocks_1_1_proj_in name no "
                                                r"parameter of this model's Stage C or text encoder"):
        use(model, ((str(tmp_path / "sdxl.safetensors"), 1.0),))


def test_an_unknown_name_in_a_request_is_a_request_error(model):
    request = cc.GenerationRequest("a fox", width=256, height=256, prior_steps=1, loras=(("nope", 1.0),))
    with pytest.raises(cc.RequestError, match="loras: no LoRA 'nope'"):
        list(cc.generate(model, request, stage_c_only=True))
