"""The text encoder's kept embeddings: reused for a prompt seen before, bounded, safe across threads."""
from __future__ import annotations

import threading

import pytest
import torch

from cascade_core.text import TextEncoder


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


def test_threads_share_the_cache_without_losing_entries(encoder):
    text, errors = encoder(cache_size=8), []
    prompts = ["a", "b", "c", "d"]

    def work():
        try:
            for prompt in prompts * 3:
                assert text(prompt).input_ids.shape == (1, 77)
        except Exception as e:  # noqa: BLE001 - reported below, in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert all(text.cached(p) is not None for p in prompts)
    assert text.runs < 4 * len(prompts) * 3  # most calls were hits
