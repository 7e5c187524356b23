"""The running demo studio under load and attack: 30 concurrent clients, path traversal through the file
route and the request fields, HTML in prompts, oversized payloads."""
from __future__ import annotations

import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from PIL import Image

from cascade_core.images import read_settings
from ui.outputs import OutputsWriter

CONCURRENT = 30
ATTACK = '<script>alert("x")</script><img src=x onerror=alert(1)> ../../../../tmp/evil %2e%2e/\\..\\ {prompt}'


def generate(url: str, prompt: str, seed: int, negative: str = ""):
    """One /generate call from its own client (own session): the final outputs, or the exception."""
    try:
        client = Client(url, verbose=False)
        return client.submit(prompt, negative, 256, 256, seed, 1, 4.0, 1, 1.1, 1,
                             api_name="/generate").result(timeout=600)
    except Exception as error:  # noqa: BLE001 - the outcome under test
        return error


def test_concurrent_requests_each_complete_with_their_own_images_or_are_refused(demo_studio):
    seeds = [5000 + k for k in range(CONCURRENT)]
    with ThreadPoolExecutor(CONCURRENT) as pool:
        outcomes = list(pool.map(lambda k: generate(demo_studio.url, f"request number {k}", seeds[k]),
                                 range(CONCURRENT)))
    done = [(k, o) for k, o in enumerate(outcomes) if not isinstance(o, Exception)]
    refused = [(k, o) for k, o in enumerate(outcomes) if isinstance(o, Exception)]
    for k, error in refused:
        assert "Queue is full" in str(error), (k, error)  # busy: the client may try again
    assert done, "no request completed"
    files = set()
    for k, (_, _, images, settings, status) in done:
        assert status.startswith("Done"), status
        assert settings["seeds"] == [seeds[k]] and len(images) == 1
        image = settings["images"][0]
        assert (image["seed"], image["prompt"]) == (seeds[k], f"request number {k}")
        on_disk = read_settings(image["file"])
        assert (on_disk["seed"], on_disk["prompt"]) == (seeds[k], f"request number {k}")
        files.add(image["file"])
    assert len(files) == len(done)  # every image has its own file
    saved = {read_settings(p)["seed"] for p in demo_studio.outputs.glob("*/*.png")}
    assert {seeds[k] for k, _ in done} <= saved
    assert not {seeds[k] for k, _ in refused} & saved  # a refused request left nothing half-done
    print(f"{len(done)} completed, {len(refused)} refused")


def test_html_and_traversal_in_prompts_are_plain_text(demo_studio):
    _, _, images, settings, status = generate(demo_studio.url, ATTACK, 77, negative=ATTACK)
    image = settings["images"][0]
    assert image["prompt"] == ATTACK and image["negative_prompt"] == ATTACK
    path = Path(image["file"])
    assert path.parent.parent == demo_studio.outputs.resolve() and path.name.endswith("-77.png")
    assert read_settings(path)["prompt"] == ATTACK
    assert "<" not in status


def test_oversized_prompt_is_refused_and_the_server_carries_on(demo_studio):
    message = "prompt: is 1,000,000 characters long; the limit is 10,000"  # the engine's RequestError, as it is
    with pytest.raises(AppError, match=f"^{re.escape(message)}$"):
        Client(demo_studio.url, verbose=False).predict("x" * 1_000_000, "", 256, 256, 1, 1, 4.0, 1, 1.1, 1,
                                                       api_name="/generate")
    with urllib.request.urlopen(demo_studio.url + "/config", timeout=10) as response:
        assert response.status == 200


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


@pytest.fixture
def saved_image(demo_studio) -> Path:
    """An image in the studio's outputs folder, written as the studio writes them (this test's own)."""
    writer = OutputsWriter(demo_studio.outputs.resolve())
    return writer.save(Image.new("RGB", (8, 8), "teal"), {"prompt": "served", "seed": 4242}).path


def test_the_file_route_serves_the_outputs_folder_and_nothing_else(demo_studio, saved_image):
    image = saved_image
    base = demo_studio.url + "/gradio_api/file="
    status, body = fetch(base + urllib.parse.quote(str(image)))
    assert status == 200 and body == image.read_bytes()  # the route works for what it should serve
    repo = Path(__file__).resolve().parents[2]
    outside = [str(repo / "app.py"), str(repo / "README.md"), "/etc/passwd", str(demo_studio.log),
               f"{image.parent}/../../server.log", f"{image.parent}/../../../{demo_studio.log.parent.name}/server.log",
               "app.py", "../app.py", "ui/handlers.py", str(image.parent / ".." / ".." / ".." / "..")]
    for path in outside:
        for quoted in (urllib.parse.quote(path), urllib.parse.quote(urllib.parse.quote(path, safe=""))):
            assert fetch(base + quoted)[0] in (400, 403, 404), path
    encoded = [f"{urllib.parse.quote(str(image.parent))}/%2e%2e/%2e%2e/server.log", "%2e%2e/app.py", "..%2fapp.py",
               "%2Fetc%2Fpasswd", f"{urllib.parse.quote(str(image.parent))}%2F..%2F..%2Fserver.log"]
    for path in encoded:
        assert fetch(base + path)[0] in (400, 403, 404), path


def joined_queue(client: Client) -> threading.Event:
    """Set once the server has put this client's next request in its queue: gradio_client's send_data posts
    the queue join and returns the event id the server answered with."""
    joined, send_data = threading.Event(), client.send_data

    def send_and_tell(*args, **kwargs):
        event_id = send_data(*args, **kwargs)
        joined.set()
        return event_id

    client.send_data = send_and_tell
    return joined


def test_requests_finish_in_arrival_order(demo_studio):
    clients = [Client(demo_studio.url, verbose=False) for _ in range(4)]
    finished = []
    jobs = []
    for k, client in enumerate(clients):
        joined = joined_queue(client)
        job = client.submit(f"in order {k}", "", 256, 256, 900 + k, 6, 4.0, 2, 1.1, 1, api_name="/generate")
        job.add_done_callback(lambda _, k=k: finished.append(k))
        jobs.append(job)
        assert joined.wait(60), f"request {k} never joined the queue"  # in before the next: a clear order
    outcomes = [job.result(timeout=600) for job in jobs]
    assert [o[3]["seeds"] for o in outcomes] == [[900 + k] for k in range(4)]
    assert finished == [0, 1, 2, 3]
