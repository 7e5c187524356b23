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

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    handle.remove()
    assert not errors and not any(thread.is_alive() for thread in threads)
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
                    assert text._encode("a").input_ids.shape == (1, 77)
        except AssertionError as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == [] and not any(thread.is_alive() for thread in threads)
