"""One forward pass of each network equals the official module's (../shared/reference/modules)."""
import json

import pytest
import torch
from safetensors.torch import load_file

from cascade_core.config import PreviewerConfig, StageAConfig, StageBConfig, StageCConfig
from cascade_core.models import build
from tests.conftest import REFERENCE, relative_error

MODULES = REFERENCE / "modules"
CONFIGS = {"stage_c": StageCConfig, "stage_b": StageBConfig, "stage_a": StageAConfig, "previewer": PreviewerConfig}


def reference_network(name):
    spec = json.loads((MODULES / f"{name}_tiny.json").read_text())
    net = build(CONFIGS[name].from_official(spec["constructor_args"]))
    net.load_state_dict(load_file(MODULES / f"{name}_tiny.safetensors"), strict=True)
    return net, load_file(MODULES / f"{name}_tiny.io.safetensors"), spec["cases"]


def cases(name):
    spec = json.loads((MODULES / f"{name}_tiny.json").read_text())
    return [(name, k) for k in range(spec["cases"])]


@pytest.mark.parametrize("name,case", cases("stage_c") + cases("stage_b"))
@torch.inference_mode()
def test_denoiser_forward(name, case):
    net, io, _ = reference_network(name)
    get = lambda key: io[f"{case}.{key}"]
    if name == "stage_c":
        out = net(get("x"), get("r"), get("clip_text"), get("clip_text_pooled"), get("clip_img"))
    else:
        out = net(get("x"), get("r"), get("effnet"), get("clip"))
    assert relative_error(out, get("out")) <= 1e-4


@torch.inference_mode()
def test_stage_a_decode_and_encode():
    net, io, count = reference_network("stage_a")
    for k in range(count):
        assert relative_error(net.decode(io[f"{k}.latent"]), io[f"{k}.decoded"]) <= 1e-4
        assert relative_error(net.encode(io[f"{k}.image"]), io[f"{k}.encoded"]) <= 1e-4


@torch.inference_mode()
def test_stage_a_runs_channels_last():
    """Every residual block sees NHWC memory, so its LayerNorms and MLP permute views, not copies."""
    from cascade_core.models.stage_a import VQResBlock
    net, io, _ = reference_network("stage_a")
    layouts = []
    nhwc = lambda module, args: layouts.append(args[0].is_contiguous(memory_format=torch.channels_last))
    for block in (m for m in net.modules() if isinstance(m, VQResBlock)):
        block.register_forward_pre_hook(nhwc)
    net.decode(io["0.latent"])
    net.encode(io["0.image"])
    assert len(layouts) > 2 and all(layouts)


@torch.inference_mode()
def test_previewer():
    net, io, count = reference_network("previewer")
    for k in range(count):
        assert relative_error(net(io[f"{k}.latent"]), io[f"{k}.out"]) <= 1e-4


def test_tiny_presets_equal_reference_args():
    for name, config_class in CONFIGS.items():
        spec = json.loads((MODULES / f"{name}_tiny.json").read_text())
        assert build(f"{name}_tiny").config == config_class.from_official(spec["constructor_args"])


@torch.inference_mode()
def test_freshly_built_networks_are_initialised():
    """Built without a checkpoint (benchmarks, training), every parameter is set: outputs are finite."""
    stage_c, stage_b = build("stage_c_tiny"), build("stage_b_tiny")
    out_c = stage_c(torch.randn(1, 16, 6, 6), torch.rand(1), torch.randn(1, 77, 32), torch.randn(1, 1, 32),
                    torch.zeros(1, 1, 24))
    out_b = stage_b(torch.randn(1, 4, 16, 16), torch.rand(1), out_c, torch.randn(1, 1, 32))
    assert out_c.isfinite().all() and out_b.isfinite().all()
