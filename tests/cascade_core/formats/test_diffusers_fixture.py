"""The committed diffusers-layout fixture (made by diffusers: tests/fixtures/make_diffusers_fixture.py) loads
without diffusers, and our networks compute what diffusers computed with the same files."""
import torch
from safetensors.torch import load_file

from cascade_core.formats import sources
from cascade_core.weights import load_network
from tests.conftest import ROOT, relative_error

FIXTURE = ROOT / "tests" / "fixtures" / "diffusers_tiny"
CPU = torch.device("cpu")


def test_each_network_matches_diffusers_outputs():
    place = sources.Place(FIXTURE)
    files = {stage: sources.network(place, stage, "auto", torch.float32) for stage in ("stage_c", "stage_b", "stage_a")}
    assert {s: f.format for s, f in files.items()} == {"stage_c": "diffusers prior/", "stage_b": "diffusers decoder/",
                                                       "stage_a": "diffusers vqgan/"}
    assert len({t.path for source in files["stage_b"].plan.values() for t in source.parts}) == 4  # the shards
    assert files["stage_a"].config.scale_factor == 0.3764  # vqgan/config.json's, as diffusers' pipeline uses it
    x = load_file(FIXTURE / "expected.safetensors")
    with torch.no_grad():
        c = load_network(files["stage_c"], CPU, torch.float32)
        assert relative_error(c(x["c.x"], x["c.r"], x["c.clip_text"], x["c.clip_text_pooled"], x["c.clip_img"]),
                              x["c.out"]) <= 1e-4
        b = load_network(files["stage_b"], CPU, torch.float32)
        assert relative_error(b(x["b.x"], x["b.r"], x["b.effnet"], x["b.clip"]), x["b.out"]) <= 1e-4
        a = load_network(files["stage_a"], CPU, torch.float32)
        assert relative_error(a.decode(x["a.latent"]), x["a.decoded"]) <= 1e-4


def test_the_previewer_is_absent_from_diffusers_layout():
    assert sources.network(sources.Place(FIXTURE), "previewer", "auto", torch.float32) is None
