"""A running studio (`python app.py --demo` in a subprocess on a free port), one headless Chromium and the
screenshots folder, shared by the app tests; waiting on a /generate job's streamed outputs."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from .studio_page import ARGS, CHROMIUM, needs_chromium

REPO = Path(__file__).resolve().parents[2]
TINY_MODEL = REPO.parent / "shared" / "reference" / "pipeline" / "tiny-cascade"
START_TIMEOUT_S = 180
SERVING = "Running on local URL:"  # what Gradio's launch() prints once the server answers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Studio:
    def __init__(self, url: str, outputs: Path, process: subprocess.Popen, log: Path):
        self.url, self.outputs, self.process, self.log = url, outputs, process, log


def _copy_output(process: subprocess.Popen, log: Path, serving: threading.Event) -> None:
    """Copy the server's output into `log` line by line; set `serving` once it serves, or when it exits."""
    with open(log, "wb") as out:
        for line in process.stdout:
            out.write(line)
            out.flush()
            if SERVING.encode() in line:
                serving.set()
    serving.set()  # the output ended: the process exited


def start_studio(tmp: Path, *args: str) -> Studio:
    port, outputs, log = free_port(), tmp / "outputs", tmp / "server.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--outputs", str(outputs), *args],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    serving = threading.Event()
    threading.Thread(target=_copy_output, args=(process, log, serving), name="studio-log", daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    if not serving.wait(START_TIMEOUT_S):
        process.kill()
        raise RuntimeError(f"app.py did not serve within {START_TIMEOUT_S} s:\n{log.read_text()}")
    if process.poll() is not None:
        process.wait()
        raise RuntimeError(f"app.py exited with {process.returncode}:\n{log.read_text()}")
    with urllib.request.urlopen(url + "/config", timeout=10) as response:
        assert response.status == 200
    return Studio(url, outputs, process, log)


def stop_studio(studio: Studio) -> None:
    studio.process.terminate()
    try:
        studio.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        studio.process.kill()
        studio.process.wait()


@pytest.fixture(scope="package")
def demo_studio(tmp_path_factory):
    """One demo studio for all of tests/app (stopped when the package's tests end)."""
    studio = start_studio(tmp_path_factory.mktemp("demo"), "--demo")
    yield studio
    stop_studio(studio)


@pytest.fixture(scope="package")
def browser():
    """One headless Chromium for the browser tests (each test module opens its own tabs)."""
    sync_api = needs_chromium()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="package")
def screenshots(request, tmp_path_factory) -> Path:
    """Where the browser tests save their screenshots: a temporary folder unless `--screenshots DIR` is given
    (docs/refresh_screenshots.py gives one), so that a test run never rewrites the tracked docs/screenshots/."""
    chosen = request.config.getoption("screenshots", default=None)
    return Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")


def first_output(job, matches, timeout: float):
    """The first streamed output of a gradio_client job for which `matches` holds, or None if the job ended
    without one; fails the test when neither happened within `timeout` seconds (a stuck server)."""
    found, over = [], threading.Event()

    def watch():
        try:
            for output in job:  # blocks until the next output arrives, ends when the job does
                if matches(output):
                    found.append(output)
                    return
        finally:
            over.set()

    threading.Thread(target=watch, name="job-watch", daemon=True).start()
    assert over.wait(timeout), f"no matching output and no end of the job within {timeout} s"
    return found[0] if found else None
