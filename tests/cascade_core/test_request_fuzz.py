"""Property-based test of the engine boundary: any value in any field is a valid request or a RequestError."""
import math
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cascade_core.request import (MAX_GUIDANCE, MAX_IMAGES, MAX_PROMPT_CHARS, MAX_SEED, MAX_SIZE, MAX_STEPS,
                                  MIN_SIZE, GenerationRequest, RequestError)

FIELDS = ["prompt", "negative_prompt", "width", "height", "seed", "prior_steps", "prior_guidance", "decoder_steps",
          "decoder_guidance", "num_images"]
UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")

anything = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-10, 3000), st.floats(), st.floats(-50, 3000),
    st.text(), st.binary(max_size=8), st.lists(st.integers(), max_size=2), st.complex_numbers(max_magnitude=10),
)
texts = st.one_of(st.text(), st.text(st.characters(exclude_categories=()), max_size=50),
                  st.text(st.sampled_from("a\x00\t\n\r\x1b\x7f\x85\ud800\udfff🦊é"), max_size=20),
                  st.integers(MAX_PROMPT_CHARS - 2, MAX_PROMPT_CHARS + 2).map(lambda n: "é" * n), anything)
numbers = {
    "width": st.one_of(st.integers(MIN_SIZE - 8, MAX_SIZE + 8), anything),
    "height": st.one_of(st.integers(MIN_SIZE - 8, MAX_SIZE + 8), anything),
    "seed": st.one_of(st.integers(-2, MAX_SEED + 2), st.integers(min_value=MAX_SEED - 10), anything),
    "prior_steps": st.one_of(st.integers(-1, MAX_STEPS + 1), anything),
    "decoder_steps": st.one_of(st.integers(-1, MAX_STEPS + 1), anything),
    "prior_guidance": st.one_of(st.floats(-1, MAX_GUIDANCE + 1), anything),
    "decoder_guidance": st.one_of(st.floats(-1, MAX_GUIDANCE + 1), anything),
    "num_images": st.one_of(st.integers(0, MAX_IMAGES + 1), anything),
}
requests = st.fixed_dictionaries({}, optional={"prompt": texts, "negative_prompt": texts, **numbers})


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests)
def test_every_field_is_checked_at_the_boundary(fields):
    try:
        request, notices = GenerationRequest(**{"prompt": "", **fields}).validated()
    except RequestError as error:  # never any other exception, always naming a field that was given
        assert error.field in FIELDS and str(error).startswith(f"{error.field}: ")
        assert error.field in fields or error.field == "seed"  # a default seed fails only with a huge batch
        return
    for name in ("prompt", "negative_prompt"):
        text = getattr(request, name)
        assert isinstance(text, str) and len(text) <= MAX_PROMPT_CHARS and not UNPRINTABLE.search(text)
        text.encode("utf-8")  # writable into PNG text chunks and JSON sidecars
    for name in ("width", "height"):
        value = getattr(request, name)
        assert type(value) is int and MIN_SIZE <= value <= MAX_SIZE and value % 8 == 0
    for name in ("prior_steps", "decoder_steps"):
        assert type(getattr(request, name)) is int and 1 <= getattr(request, name) <= MAX_STEPS
    for name in ("prior_guidance", "decoder_guidance"):
        value = getattr(request, name)
        assert type(value) is float and math.isfinite(value) and 0 <= value <= MAX_GUIDANCE
    assert type(request.num_images) is int and 1 <= request.num_images <= MAX_IMAGES
    assert type(request.seed) is int and 0 <= request.seeds()[0] and request.seeds()[-1] <= MAX_SEED
    assert all(isinstance(n, str) and n for n in notices)
    assert request.validated() == (request, ())  # what the engine runs passes the boundary unchanged
