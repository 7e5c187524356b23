"""A running studio (`python app.py --demo` in a subprocess on a free port), shared by the app tests."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY_MODEL = REPO.parent / "shared" / "reference" / "pipeline" / "tiny-cascade"
START_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Studio:
    def __init__(self, url: str, outputs: Path, process: subprocess.Popen, log: Path):
        self.url, self.outputs, self.process, self.log = url, outputs, process, log


def start_studio(tmp: Path, *args: str) -> Studio:
    port, outputs, log = free_port(), tmp / "outputs", tmp / "server.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--outputs", str(outputs), *args],
                                   cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url + "/config", timeout=2):
                return Studio(url, outputs, process, log)
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"app.py did not serve within {START_TIMEOUT_S} s:\n{log.read_text()}")


def stop_studio(studio: Studio) -> None:
    studio.process.terminate()
    try:
        studio.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        studio.process.kill()


@pytest.fixture(scope="package")
def demo_studio(tmp_path_factory):
    """One demo studio for all of tests/app (stopped when the package's tests end)."""
    studio = start_studio(tmp_path_factory.mktemp("demo"), "--demo")
    yield studio
    stop_studio(studio)
