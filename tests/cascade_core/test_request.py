import math

import pytest

from cascade_core.request import MAX_SEED, GenerationRequest, RequestError


def test_defaults_are_the_official_ones():
    request, notices = GenerationRequest("a fox", seed=1).validated()
    assert (request.width, request.height, request.prior_steps, request.prior_guidance,
            request.decoder_steps, request.decoder_guidance) == (1024, 1024, 20, 4.0, 10, 1.1)
    assert notices == ()


def test_random_seed_is_chosen_and_kept():
    request, _ = GenerationRequest("a fox").validated()
    assert isinstance(request.seed, int) and 0 <= request.seed < 2**32
    assert request.seeds() == [request.seed]


@pytest.mark.parametrize("field,value,message", [
    ("width", 255, "outside 256"), ("height", 4096, "outside 256"), ("width", 512.5, "whole number"),
    ("prior_steps", 0, "outside 1"), ("decoder_steps", 201, "outside 1"), ("prior_steps", True, "whole number"),
    ("prior_guidance", -1.0, "outside 0"), ("decoder_guidance", math.nan, "finite"), ("prior_guidance", 31, "outside 0"),
    ("num_images", 9, "outside 1"), ("seed", -1, "outside 0"), ("seed", MAX_SEED + 1, "outside 0"),
    ("seed", "42", "whole number"), ("prompt", "x" * 10_001, "10,000"), ("negative_prompt", None, "must be text"),
])
def test_bad_fields_say_what_to_change(field, value, message):
    fields = {"prompt": "a fox", field: value}
    with pytest.raises(RequestError, match=message) as error:
        GenerationRequest(**fields).validated()
    assert error.value.field == field


def test_integral_floats_are_accepted_and_sizes_snapped():
    request, notices = GenerationRequest("x", width=1000.0, height=777, seed=5.0).validated()
    assert (request.width, request.height, request.seed) == (1000, 776, 5)
    assert notices == ("height 777 px was rounded to 776 px (a multiple of 8)",)


def test_batch_seeds_and_single_image_requests():
    request, _ = GenerationRequest("x", seed=10, num_images=3).validated()
    assert request.seeds() == [10, 11, 12]
    assert request.for_image(2) == GenerationRequest("x", seed=12, num_images=1)


def test_control_characters_are_removed_with_a_notice_and_any_unicode_is_kept():
    text = "un renard 🦊 dans la neige, 雪の中の狐, ثعلب"
    request, notices = GenerationRequest(f"{text}\x00\x1b[31m\r\n", negative_prompt="blur\x7f\ud800",
                                         seed=1).validated()
    assert request.prompt == f"{text}[31m\n"  # tab and newline stay; NUL, ESC and CR go
    assert request.negative_prompt == "blur"  # DEL and an unpaired surrogate (not UTF-8) go
    assert notices == ("3 control characters removed from the prompt",
                       "2 control characters removed from the negative_prompt")
    request.prompt.encode("utf-8")


@pytest.mark.parametrize("value", [math.inf, -math.inf, 1e300, 2**64, -(2**64), 1.5, "1", [1], 3j])
def test_odd_seeds_are_refused_with_the_field(value):
    with pytest.raises(RequestError) as error:
        GenerationRequest("x", seed=value).validated()
    assert error.value.field == "seed"
