"""The text encoder: the official reading of a prompt, windows beyond 77 tokens, weighting; its kept
embeddings: reused for a prompt seen before, bounded, safe across threads."""
from __future__ import annotations

import copy
import threading

import pytest
import torch

import cascade_core as cc
from cascade_core.prompt_windows import OFFICIAL, PromptMode
from cascade_core.text import TextEncoder
from tests.conftest import relative_error

LONG = PromptMode(windows=3, weighting=True)  # the request's default


@pytest.fixture
def encoder(tiny_model):
    """A fresh encoder (empty cache) over the tiny model's tokenizer and CLIP model, counting its runs."""
    def make(cache_size=3):
        made = TextEncoder(tiny_model.text_encoder.tokenizer, tiny_model.text_encoder.model, cache_size=cache_size)
        made.runs = 0
        def count(*_):
            made.runs += 1
        handles.append(made.model.register_forward_pre_hook(count))
        return made
    handles = []
    yield make
    for handle in handles:
        handle.remove()


def test_a_prompt_seen_before_skips_the_transformer(encoder):
    text = encoder()
    first = text("a red fox")
    again = text("a red fox")
    assert text.runs == 1 and again is first
    fresh = TextEncoder(text.tokenizer, text.model, cache_size=0)("a red fox")
    assert torch.equal(again.clip_text, fresh.clip_text) and torch.equal(again.clip_text_pooled, fresh.clip_text_pooled)


def test_the_least_recently_used_prompt_goes_first(encoder):
    text = encoder(cache_size=2)
    text("a"), text("b"), text("a"), text("c")  # "a" was used after "b", so "b" goes
    assert text.runs == 3
    assert text.cached("a") is not None and text.cached("c") is not None and text.cached("b") is None
    text("b")
    assert text.runs == 4


def test_size_zero_keeps_nothing_and_forget_empties(encoder):
    text = encoder(cache_size=0)
    text("a"), text("a")
    assert text.runs == 2 and text.cached("a") is None
    text = encoder(cache_size=4)
    text("a")
    text.forget()
    assert text.cached("a") is None
    text("a")
    assert text.runs == 2


def in_threads(work, n: int) -> bool:
    """Run work(0) … work(n-1) in n threads at once; whether any is still running after 120 s."""
    threads = [threading.Thread(target=work, args=(k,)) for k in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return any(thread.is_alive() for thread in threads)


def test_threads_share_the_cache_without_losing_entries(encoder):
    """Four threads at once, each over the prompts three times: a thread may encode a prompt another is
    still encoding (the transformer runs outside the lock), but never one it has itself been given."""
    text, errors, prompts, rounds = encoder(cache_size=8), [], ["a", "b", "c", "d"], 3
    ran = threading.local()  # the transformer runs in the calling thread: count its runs per thread
    ran.count = 0
    handle = text.model.register_forward_pre_hook(lambda *_: setattr(ran, "count", ran.count + 1))
    runs = {}  # (thread, round, prompt) → transformer runs of that call
    start = threading.Barrier(4)

    def work(k):
        ran.count = 0
        try:
            start.wait(timeout=60)
            for round_ in range(rounds):
                for prompt in prompts:
                    before = ran.count
                    assert text(prompt).input_ids.shape == (1, 77)
                    runs[k, round_, prompt] = ran.count - before
        except Exception as e:  # noqa: BLE001 - reported below, in the test's thread
            errors.append(e)

    stuck = in_threads(work, 4)
    handle.remove()
    assert not errors and not stuck
    assert len(runs) == 4 * rounds * len(prompts)
    assert [key for key, n in runs.items() if key[1] > 0 and n != 0] == []  # every later round: all hits
    assert [key for key, n in runs.items() if n not in (0, 1)] == []  # a miss runs the transformer once
    assert all(sum(runs[k, 0, p] for k in range(4)) >= 1 for p in prompts)  # the first caller of each encodes it
    assert all(text.cached(p) is not None for p in prompts)


def test_threads_tokenizing_at_once_keep_their_own_padding(encoder):
    """The fast tokenizer's padding settings are shared state: counting a long prompt's dropped words
    (no padding) while another thread encodes (padding to 77) must not leave either with the other's."""
    text, errors = encoder(cache_size=0), []
    long_prompt = " ".join(["word"] * 100)
    start = threading.Barrier(4)

    def work(k):
        try:
            start.wait(timeout=60)
            for _ in range(150):
                if k % 2:
                    assert text.dropped_words(long_prompt) == " ".join(["word"] * 25)
                else:
                    assert text("a").input_ids.shape == (1, 77)
        except AssertionError as e:
            errors.append(e)

    assert not in_threads(work, 4) and errors == []


@torch.inference_mode()
def official(text, prompt):
    """The official pipeline's text tensors (reference README, pipeline/ step 1): input_ids, clip_text, pooled."""
    tokens = text.tokenizer(prompt, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    out = text.model(**tokens, output_hidden_states=True)
    return tokens["input_ids"], out.hidden_states[-1], out.text_embeds[:, None]


@torch.inference_mode()
def one_window(text, tokens):
    """[bos] + tokens + [eos], padded to 77 by the tokenizer itself, through the transformer alone."""
    framed = [text.tokenizer.bos_token_id, *tokens, text.tokenizer.eos_token_id]
    framed = text.tokenizer.pad({"input_ids": [framed]}, padding="max_length", max_length=77, return_tensors="pt")
    out = text.model(**framed, output_hidden_states=True)
    return framed["input_ids"], out.hidden_states[-1], out.text_embeds[:, None]


def prompt_tokens(text, prompt):
    return text.tokenizer(prompt)["input_ids"][1:-1]


SCENE = "red fox in the snow at night with a lantern "  # 10 tokens, no comma
FITS = ["a photograph of a red fox in the snow", "", "blurry, low quality", "fox " * 75, "style: 35mm photo 🦊"]


@pytest.mark.parametrize("mode", [OFFICIAL, LONG, PromptMode(1, True), PromptMode(8, False)])
@pytest.mark.parametrize("prompt", FITS)
def test_a_prompt_that_fits_one_window_is_exactly_the_official_encoding(encoder, prompt, mode):
    ids, clip_text, pooled = official(encoder(), prompt)
    assert len(prompt_tokens(encoder(), prompt)) <= 75
    ours = encoder()(prompt, mode)
    assert torch.equal(ours.input_ids, ids) and ours.dropped == "" and ours.windows == 1
    assert torch.equal(ours.clip_text, clip_text) and torch.equal(ours.clip_text_pooled, pooled)


@pytest.mark.parametrize("mode", [OFFICIAL, PromptMode(1, True)])
def test_one_window_truncates_as_the_official_pipeline_and_says_what_it_cut(encoder, mode):
    prompt = "fox " * 80 + "snow city"
    text = encoder()
    ids, clip_text, pooled = official(text, prompt)
    ours = text(prompt, mode)
    assert torch.equal(ours.input_ids, ids) and torch.equal(ours.clip_text, clip_text)
    assert torch.equal(ours.clip_text_pooled, pooled)
    assert ours.dropped == "fox fox fox fox fox snow city" == text.dropped_words(prompt, mode)


def test_a_long_prompt_is_read_in_windows_one_after_another(encoder):
    text = encoder()
    prompt = SCENE * 16  # 160 tokens: 75 + 75 + 10
    tokens = prompt_tokens(text, prompt)
    ours = text(prompt, LONG)
    assert ours.clip_text.shape == (1, 3 * 77, 32) and ours.windows == 3 and ours.dropped == ""
    for k in range(3):
        ids, clip_text, pooled = one_window(text, tokens[75 * k:75 * (k + 1)])
        assert torch.equal(ours.input_ids[:, 77 * k:77 * (k + 1)], ids)
        assert relative_error(ours.clip_text[:, 77 * k:77 * (k + 1)], clip_text) <= 1e-6  # one batch vs alone
        if k == 0:
            assert relative_error(ours.clip_text_pooled, pooled) <= 1e-6  # the pooled output: the first window's
    two = text(prompt, PromptMode(2, True))
    assert two.windows == 2 and relative_error(two.clip_text, ours.clip_text[:, :154]) <= 1e-6
    assert two.dropped == text.tokenizer.decode(tokens[150:]).strip() == (SCENE * 1).strip()


def test_a_full_window_ends_after_a_comma_near_its_end(encoder):
    """A1111's comma backtrack: the phrase the 75-token boundary would split goes whole to the next window."""
    text = encoder()
    prompt = "a red fox in the snow, " * 12  # phrases of 7 tokens: the 11th would be split at token 75
    windows = text.windows_of(prompt, LONG)
    assert windows.lengths == (2 + 70, 2 + 14)  # ten phrases, then two
    assert windows.ids[1][1:windows.lengths[1] - 1] == tuple(prompt_tokens(text, "a red fox in the snow, " * 2))
    assert text.windows_of(prompt, OFFICIAL).lengths == (77,)  # one window: the official cut, no backtrack


def weighted(clip_text, weights):
    """A1111's process_tokens in float64: z·w, then z·(mean before / mean after)."""
    z = clip_text.double()
    scaled = z * weights.double()[:, None]
    return scaled * (z.mean() / scaled.mean())


def test_weights_scale_their_tokens_and_the_window_keeps_its_mean(encoder):
    text = encoder()
    plain = text("a photo of a red fox in the snow", LONG)
    ours = text("a photo of a (red:1.5) fox in the (snow)", LONG)
    assert torch.equal(ours.input_ids, plain.input_ids)  # the syntax is not read as tokens
    assert torch.equal(ours.clip_text_pooled, plain.clip_text_pooled)  # the pooled output is not weighted
    weights = torch.ones(77)
    weights[5], weights[9] = 1.5, 1.1  # [bos] a photo of a red fox in the snow
    expected = weighted(plain.clip_text[0], weights)
    assert relative_error(ours.clip_text[0], expected) <= 1e-6
    restore = plain.clip_text.double().mean() / (plain.clip_text[0].double() * weights.double()[:, None]).mean()
    assert abs(restore.item() - 1) > 1e-3  # the mean restore matters in this test
    before_restore = ours.clip_text[0].double() / restore
    others = torch.ones(77, dtype=torch.bool)
    others[[5, 9]] = False
    assert relative_error(before_restore[others], plain.clip_text[0, others]) <= 1e-6  # only the weighted tokens moved


def test_weights_apply_in_every_window_each_with_its_own_mean(encoder):
    text = encoder()
    plain = text(SCENE * 10, LONG)  # 100 tokens: window 2 holds tokens 75–99
    ours = text(SCENE * 8 + "red fox in the snow at night with a (lantern:0.5) " + SCENE, LONG)
    assert torch.equal(ours.input_ids, plain.input_ids) and ours.windows == 2
    assert torch.equal(ours.clip_text[:, :77], plain.clip_text[:, :77])  # all weights 1: untouched
    weights = torch.ones(77)
    weights[1 + 89 - 75] = 0.5  # "lantern" is token 89 of the prompt, the 15th of window 2, after [bos]
    assert relative_error(ours.clip_text[0, 77:], weighted(plain.clip_text[0, 77:], weights)) <= 1e-6


def test_brackets_are_text_without_weighting_and_modes_do_not_share_what_differs(encoder):
    text = encoder(cache_size=8)
    off, on = text("a (red) fox", PromptMode(3, False)), text("a (red) fox", LONG)
    assert not torch.equal(off.input_ids, on.input_ids) and text.runs == 2
    assert torch.equal(off.input_ids, official(text, "a (red) fox")[0])  # the parentheses are tokens
    text.runs = 0
    assert text.cached("a (red) fox", PromptMode(3, False)) is off and text.cached("a (red) fox", LONG) is on
    assert text.cached("a (red) fox") is off  # OFFICIAL reads it as text too: the same tokens, the same entry
    text("a red fox", OFFICIAL), text("a red fox", LONG), text("a  red   fox", PromptMode(5, True))
    assert text.runs == 1  # the same tokens and weights: one embedding, whatever the mode


def test_the_shorter_branch_gets_windows_of_the_empty_prompt(encoder):
    text = encoder(cache_size=8)
    long_, short = SCENE * 10, "blurry, low quality"
    cond, uncond = text.pair(long_, short, LONG)
    alone, empty = text(short, LONG), text("", LONG)
    assert cond.clip_text.shape == uncond.clip_text.shape == (1, 154, 32)
    assert torch.equal(uncond.clip_text[:, :77], alone.clip_text) and torch.equal(uncond.clip_text[:, 77:], empty.clip_text)
    assert torch.equal(uncond.input_ids[:, 77:], empty.input_ids)
    assert torch.equal(uncond.clip_text_pooled, alone.clip_text_pooled)  # Stage B's condition is unchanged
    flipped = text.pair(short, long_, LONG)
    assert torch.equal(flipped[0].clip_text, uncond.clip_text) and torch.equal(flipped[1].clip_text, cond.clip_text)
    kept = text.cached_pair(long_, short, LONG)
    assert torch.equal(kept[0].clip_text, cond.clip_text) and torch.equal(kept[1].clip_text, uncond.clip_text)
    same = text.pair("a", "b", LONG)
    assert same[0] is text.cached("a", LONG) and same[1] is text.cached("b", LONG)  # nothing to pad
    text.forget()
    text(long_, LONG), text(short, LONG)
    assert text.cached_pair(long_, short, LONG) is None  # the empty prompt's window is not kept


def test_added_tokens_with_brackets_are_never_weighting_syntax(encoder):
    """A LoRA's trained token such as `[fernando]` (reference README, extras/lora) reaches the tokenizer whole."""
    tokenizer = copy.deepcopy(encoder().tokenizer)
    tokenizer.add_tokens(["[fernando]"])
    windows = TextEncoder(tokenizer, encoder().model).windows_of("a photo of [fernando] dog", LONG)
    new_id = tokenizer.convert_tokens_to_ids("[fernando]")
    assert new_id in windows.ids[0] and windows.weights is None
    weighted_ = TextEncoder(tokenizer, encoder().model).windows_of("a photo of ([fernando]:1.4) dog", LONG)
    assert weighted_.weights[0][weighted_.ids[0].index(new_id)] == 1.4


def generated(model, **fields):
    request = cc.GenerationRequest(**{"seed": 3, "width": 256, "height": 256, "prior_steps": 2, **fields})
    events = list(cc.generate(model, request, stage_c_only=True, keep_tensors=True))
    return events[0].notices, events[-1].tensors["latent_c"]


def test_every_window_reaches_stage_c_and_the_notices_say_what_was_cut(tiny_model):
    """Guided Stage C batches both branches: a 2-window prompt with a 1-window negative prompt runs."""
    prompt = "fox " * 75 + "a castle on a hill under a full moon"  # 84 tokens
    notices, windows = generated(tiny_model, prompt=prompt, negative_prompt="blurry")
    assert not any("CLIP tokens" in n for n in notices)
    notices, truncated = generated(tiny_model, prompt=prompt, negative_prompt="blurry", prompt_windows=1)
    assert "The prompt is longer than 77 CLIP tokens; these words were ignored: a castle on a hill under a full moon" \
        in notices
    assert relative_error(windows, truncated) > 1e-3  # the words of window 2 change the composition
    notices, _ = generated(tiny_model, prompt="fox " * 240, negative_prompt="fox " * 80 + "snow", prior_steps=1,
                           prompt_windows=2, prior_guidance=1.0)
    assert notices == ("The prompt does not fit in 2 windows of 75 CLIP tokens; these words were ignored: "
                       + " ".join(["fox"] * 90),)
