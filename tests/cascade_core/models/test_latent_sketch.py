"""The previewer's stand-in: the latent's first three channels, standardised, squashed and enlarged 8×."""
import torch

from cascade_core.models.latent_sketch import LatentSketch


def test_shape_range_and_what_it_shows():
    latent = torch.zeros(2, 16, 3, 4)
    latent[0, 0, 0, 0] = 5.0  # one bright red spot in the first image
    sketch = LatentSketch()(latent)
    assert sketch.shape == (2, 3, 24, 32) and 0 <= sketch.min() and sketch.max() <= 1
    assert sketch[0, 0, :8, :8].min() > 0.9 and sketch[0, 0, 8:, 8:].max() < 0.5  # the spot, 8×8 pixels
    assert torch.allclose(sketch[1], torch.full_like(sketch[1], 0.5))  # a flat latent: flat grey, no NaN
    assert LatentSketch().to(dtype=torch.bfloat16)(latent.bfloat16()).dtype == torch.bfloat16
