"""Weighting syntax as AUTOMATIC1111 reads it; how token lists are cut into windows; the request's and CLI's options."""
from __future__ import annotations

import pytest

from cascade_core.cli import main
from cascade_core.images import read_settings
from cascade_core.prompt_weighting import parse_weights
from cascade_core.prompt_windows import COMMA_BACKTRACK, PROMPT_TOKENS, window_cuts
from cascade_core.request import MAX_PROMPT_WINDOWS, GenerationRequest, RequestError
from tests.conftest import TINY_CASCADE

UP, DOWN = 1.1, 1 / 1.1


@pytest.mark.parametrize("prompt, runs", [
    # The examples of A1111's parse_prompt_attention docstring, with the weights it gives.
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("(unbalanced", [("unbalanced", 1.1)]),
    ("\\(literal\\]", [("(literal]", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
    ("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
     [("a ", 1.0), ("house", 1.5730000000000004), (" ", 1.1), ("on", 1.0), (" a ", 1.1), ("hill", 0.55),
      (", sun, ", 1.1), ("sky", 1.4641000000000006), (".", 1.1)]),
])
def test_a1111_examples(prompt, runs):
    assert parse_weights(prompt) == runs


@pytest.mark.parametrize("prompt", ["a red fox", "", "style: photo, 35mm", "🦊 naïve café", "a:b::c", "  spaced  "])
def test_a_prompt_without_syntax_is_one_run_of_weight_one(prompt):
    assert parse_weights(prompt) == [(prompt, 1.0)]


@pytest.mark.parametrize("prompt, runs", [
    ("[[dim]]", [("dim", DOWN * DOWN)]),
    ("((a) b:2)", [("a", UP * 2), (" b", 2.0)]),
    ("(a [b) c]", [("a ", UP), ("b", UP * DOWN), (" c", DOWN)]),  # each bracket closes its own kind
    ("x) y] (z", [("x) y] ", 1.0), ("z", UP)]),  # closing with nothing open: text
    ("(a : 2.5 )", [("a ", 2.5)]),  # spaces around the number
    ("(a:-.5)", [("a", -0.5)]),
    ("(a:1.2.3)", [("a:1.2.3", UP)]),  # not a number: text, then a plain round bracket
    ("b:1.3)", [("b:1.3)", 1.0)]),  # a weight with no bracket open: text
    ("\\\\(a)", [("\\", 1.0), ("a", UP)]),  # an escaped backslash, then syntax
    ("a\\b", [("ab", 1.0)]),  # a lone backslash is dropped, as A1111 drops it
    ("()", [("", 1.0)]),
    ("[cat:dog:0.5]", [("cat:dog:0.5", DOWN)]),  # A1111's prompt editing is not done: text
])
def test_nesting_escapes_and_text_that_looks_like_syntax(prompt, runs):
    parsed = parse_weights(prompt)
    assert [text for text, _ in parsed] == [text for text, _ in runs]
    assert [weight for _, weight in parsed] == pytest.approx([weight for _, weight in runs], rel=1e-15)


def test_literals_keep_their_brackets_and_the_weight_around_them():
    """A LoRA's trained token `[fernando]` is one added token of the tokenizer: it must reach it whole."""
    assert parse_weights("a [fernando] dog") == [("a ", 1.0), ("fernando", DOWN), (" dog", 1.0)]
    assert parse_weights("a [fernando] dog", ["[fernando]"]) == [("a [fernando] dog", 1.0)]
    assert parse_weights("(a [fernando]:1.5) dog", ["[fernando]"]) == [("a [fernando]", 1.5), (" dog", 1.0)]


COMMA = 0


def test_windows_hold_75_tokens_each_and_cut_after_the_last_allowed():
    tokens = list(range(1, 201))  # no comma
    assert window_cuts(tokens, 3, COMMA) == [(0, 75), (75, 150), (150, 200)]
    assert window_cuts(tokens, 2, COMMA) == [(0, 75), (75, 150)]  # 150–199 dropped
    assert window_cuts(tokens, 1, COMMA) == [(0, 75)]
    assert window_cuts([], 3, COMMA) == [(0, 0)]  # the empty prompt: one window of [bos] [eos]
    assert window_cuts(tokens[:75], 3, COMMA) == [(0, 75)]


def test_a_window_ends_after_a_comma_near_its_end_when_another_window_follows():
    tokens = [1] * 200
    tokens[60] = COMMA  # 15 tokens from the end of the first window: within the backtrack
    assert window_cuts(tokens, 3, COMMA) == [(0, 61), (61, 136), (136, 200)]
    assert window_cuts(tokens, 1, COMMA) == [(0, 75)]  # the last window allowed is filled: the official cut
    tokens[60], tokens[PROMPT_TOKENS - COMMA_BACKTRACK - 1] = 1, COMMA  # 21 tokens back: too far
    assert window_cuts(tokens, 3, COMMA)[0] == (0, 75)
    tokens[75] = COMMA  # the next token is a comma: the cut is already between phrases
    tokens[70] = COMMA
    assert window_cuts(tokens, 3, COMMA)[0] == (0, 75)
    assert window_cuts(tokens, 3, None)[0] == (0, 75)  # a vocabulary without a comma token


@pytest.mark.parametrize("value, message", [
    (0, "prompt_windows: 0 is outside 1–8"), (MAX_PROMPT_WINDOWS + 1, "is outside 1–8"),
    (2.5, "prompt_windows: must be a whole number"), ("3", "must be a whole number"),
])
def test_the_request_checks_prompt_windows(value, message):
    with pytest.raises(RequestError, match=message):
        GenerationRequest("a", prompt_windows=value).validated()


def test_the_request_checks_prompt_weighting_and_defaults_to_long_weighted_prompts():
    with pytest.raises(RequestError, match="prompt_weighting: must be true or false, got 1"):
        GenerationRequest("a", prompt_weighting=1).validated()
    request, _ = GenerationRequest("a", prompt_windows=2.0).validated()
    assert request.prompt_windows == 2 and isinstance(request.prompt_windows, int)
    defaults = GenerationRequest("a")
    assert (defaults.prompt_windows, defaults.prompt_weighting) == (3, True)
    assert {"prompt_windows": 3, "prompt_weighting": True}.items() <= defaults.to_dict().items()


def test_the_cli_reads_prompts_as_its_flags_say(tmp_path, capsys):
    """--prompt-windows 1 --no-prompt-weighting: the official truncation, with its notice, in the PNG's settings."""
    out = tmp_path / "fox.png"
    code = main(["generate", "--model", str(TINY_CASCADE), "--device", "cpu", "--dtype", "float32",
                 "--prompt", "(fox) " * 80 + "snow city", "--prompt-windows", "1", "--no-prompt-weighting",
                 "--width", "256", "--height", "256", "--prior-steps", "1", "--decoder-steps", "1", "--seed", "1",
                 "--output", str(out)])
    assert code == 0
    settings = read_settings(out)
    assert (settings["prompt_windows"], settings["prompt_weighting"]) == (1, False)
    assert "The prompt is longer than 77 CLIP tokens; these words were ignored: " in capsys.readouterr().err
    assert main(["generate", "--model", str(TINY_CASCADE), "--prompt", "a", "--prompt-windows", "9",
                 "--output", str(out)]) == 2
    assert "prompt_windows: 9 is outside 1–8" in capsys.readouterr().err
