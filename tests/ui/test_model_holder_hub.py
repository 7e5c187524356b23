"""The studio's model holder loads a hub repository in the background and says what it is doing."""
from cascade_core.options import EngineOptions
from ui.model_holder import ModelHolder
from tests.fake_hub import REPO


def test_holder_downloads_and_loads_from_the_hub(fake_hub):
    holder = ModelHolder(EngineOptions(model=REPO, device="cpu", dtype="float32", variant="lite"))
    said = []
    holder._say = lambda message: (said.append(message), ModelHolder._say(holder, message))
    holder.start()
    assert holder.wait(120) and holder.ready, holder.error
    assert any(line.startswith("[1/10] downloading stage_c_lite_bf16.safetensors") for line in said)
    assert holder.message.startswith("loaded in") and "ready on cpu" in holder.status_markdown()


def test_holder_shows_a_hub_error_in_the_page(fake_hub):
    fake_hub.gated = True
    holder = ModelHolder(EngineOptions(model=REPO, device="cpu")).start()
    assert holder.wait(60) and not holder.ready
    assert holder.error.startswith(f"{REPO} is gated") and "hf auth login" in holder.error
    assert holder.status_markdown().startswith("**Model failed to load.**")
