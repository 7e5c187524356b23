import dataclasses
import os
import subprocess
import sys

import pytest
import torch

import cascade_core as cc
from cascade_core import devices, pipeline
from cascade_core import model as model_module


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


_FAULTS_OF_A_REUSED_BUFFER = """
import resource, sys, torch
from cascade_core import devices
if sys.argv[1] == "reuse":
    assert devices.reuse_host_buffers()
for _ in range(4):  # allocated, touched, freed: the heap settles
    torch.ones(64 * 2**20 // 4)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):  # the same again
    torch.ones(64 * 2**20 // 4)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_reused_host_buffers_skip_the_page_faults():
    """Freed 64 MiB buffers are faulted in afresh by default (16384 pages each), reused with the policy."""
    faults = {mode: int(subprocess.run([sys.executable, "-c", _FAULTS_OF_A_REUSED_BUFFER, mode], check=True,
                                       capture_output=True, text=True).stdout.split()[-1])
              for mode in ("default", "reuse")}
    assert faults["default"] >= 4 * 8000
    assert faults["reuse"] < 1000


def test_a_cpu_model_reuses_host_buffers_unless_told_not_to(tiny_model, monkeypatch):
    calls = []
    monkeypatch.setattr(model_module, "reuse_host_buffers", lambda: calls.append(1))
    dataclasses.replace(tiny_model)
    assert calls == [1]
    dataclasses.replace(tiny_model, cpu_buffer_reuse=False)
    assert calls == [1]


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
