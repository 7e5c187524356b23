import os
import subprocess
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


_WHERE_A_BUFFER_LIVES = """
import ctypes, sys, torch
from cascade_core import devices

class MallInfo2(ctypes.Structure):  # glibc >= 2.33
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "reuse":
    assert devices.reuse_host_buffers()
before = libc.mallinfo2()
buffer = torch.ones(64 * 2**20 // 4)  # 64 MiB, alive while glibc is asked
after = libc.mallinfo2()
print(after.hblkhd - before.hblkhd, after.uordblks - before.uordblks)  # bytes newly mapped, newly in the heap
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt and mallinfo2")
def test_reused_host_buffers_come_from_the_heap_not_fresh_mappings():
    """glibc maps a 64 MiB buffer from the OS by default (and unmaps it when freed, so the next one is
    faulted in afresh); with the policy it comes from the heap, where the next buffer reuses its pages.
    Each case runs in its own process: the policy is process-wide."""
    mapped, in_heap = {}, {}
    for mode in ("default", "reuse"):
        out = subprocess.run([sys.executable, "-c", _WHERE_A_BUFFER_LIVES, mode], check=True, capture_output=True,
                             text=True).stdout.split()
        mapped[mode], in_heap[mode] = int(out[0]), int(out[1])
    assert mapped["default"] >= 64 * 2**20 and in_heap["default"] < 64 * 2**20
    assert mapped["reuse"] < 64 * 2**20 <= in_heap["reuse"]


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
