import os
import sys

import pytest
import torch

import cascade_core as cc
from cascade_core import devices, pipeline


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_trim_host_heap_returns_freed_pages():
    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1])

    page = os.sysconf("SC_PAGE_SIZE")
    chunks = [bytearray(b"x" * (64 * 1024)) for _ in range(2000)]  # 128 MB of touched heap chunks
    del chunks[::2]  # free every other one: 64 MB of holes between live chunks, which glibc keeps
    before = rss()
    devices.trim_host_heap()
    assert (before - rss()) * page >= 32 * 2**20  # most of the holes went back to the OS
    del chunks


def test_each_cpu_request_trims_the_heap_once(tiny_model, monkeypatch):
    calls = []
    monkeypatch.setattr(pipeline, "trim_host_heap", lambda: calls.append(1))
    request = cc.GenerationRequest("a red fox", width=256, height=256, seed=1, prior_steps=1, decoder_steps=1)
    assert isinstance(list(cc.generate(tiny_model, request))[-1], cc.Finished)
    assert calls == [1]


def test_release_memory_also_trims(monkeypatch):
    calls = []
    monkeypatch.setattr(devices, "trim_host_heap", lambda: calls.append(1))
    devices.release_memory(torch.device("cpu"))
    assert calls == [1]
