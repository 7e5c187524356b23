"""Conversion plans: shapes from headers alone, q/k/v joined in order, transposition, casts."""
import torch
from safetensors.torch import save_file

from cascade_core.formats.plan import Source, layout, load_plan, read_header


def test_joined_transposed_and_cast(tmp_path):
    q, k, v = torch.randn(2, 3), torch.randn(2, 3), torch.randn(2, 3)
    projection, steps = torch.randn(4, 5), torch.tensor(7)
    save_file({"q": q, "k": k, "v": v, "p": projection, "n": steps}, str(tmp_path / "a.safetensors"))
    header = read_header(tmp_path / "a.safetensors")
    plan = {"in_proj": Source((header["q"], header["k"], header["v"])), "proj": Source((header["p"],), transpose=True),
            "steps": Source((header["n"],))}
    assert layout(plan) == {"in_proj": (6, 3), "proj": (5, 4), "steps": ()}
    state = load_plan(plan, torch.device("cpu"), torch.bfloat16)
    assert torch.equal(state["in_proj"], torch.cat([q, k, v]).bfloat16())
    assert torch.equal(state["proj"], projection.t().bfloat16()) and state["proj"].is_contiguous()
    assert state["steps"].dtype == torch.int64 and state["steps"].item() == 7

