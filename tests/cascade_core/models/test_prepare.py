"""`prepare` once per request, then `step` per step, equals the official one-call forward."""
import torch

from cascade_core.models import build


@torch.inference_mode()
def test_one_prepared_conditioning_serves_every_step():
    torch.manual_seed(0)
    net = build("stage_c_tiny")
    cond = dict(clip_text=torch.randn(2, 77, 32), clip_text_pooled=torch.randn(2, 1, 32), clip_img=torch.randn(2, 1, 24))
    prepared = net.prepare(**cond)
    for r in (0.9, 0.5, 0.1):
        x, r = torch.randn(2, 16, 5, 7), torch.full((2,), r)
        assert torch.allclose(net.step(x, r, prepared), net(x, r, **cond), rtol=1e-5, atol=1e-6)


@torch.inference_mode()
def test_stage_b_prepares_for_its_latent_size():
    torch.manual_seed(0)
    net = build("stage_b_tiny")
    effnet, clip = torch.randn(1, 16, 3, 3), torch.randn(1, 1, 32)
    x, r = torch.randn(1, 4, 32, 24), torch.full((1,), 0.4)
    prepared = net.prepare(effnet, clip, size=x.shape[-2:])
    assert prepared.added.shape == (1, 16, 16, 12)  # the embedding's size: the latent's / patch_size
    assert torch.equal(net.step(x, r, prepared), net(x, r, effnet, clip))


def test_prepare_adds_nothing_to_the_state_dict():
    net = build("stage_c_tiny")
    names = set(net.state_dict())
    with torch.inference_mode():
        net.prepare(torch.randn(1, 77, 32), torch.randn(1, 1, 32), torch.randn(1, 1, 24))
    assert set(net.state_dict()) == names
