"""A Hugging Face hub stand-in on 127.0.0.1: the endpoints and headers huggingface_hub reads.

Serves `GET /api/models/<repo>[/revision/<rev>]` (the model info with file sizes) and
`HEAD`/`GET /<repo>/resolve/<rev>/<path>` with `X-Repo-Commit`, `ETag` and `Content-Length`,
honouring `Range: bytes=N-`, for its repository and any `others` (the extra networks' repositories:
`extra_repos`). Faults are switched on per test: a gated repository, a file whose download breaks
after some bytes, and a file served with other content.
"""
from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

from cascade_core.released import EXTRA_FILES, IMAGE_ENCODER_FILES

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO = "tester/tiny-cascade"
NETWORKS = ["stage_c", "stage_b", "stage_a", "previewer"]


@dataclass
class FakeHub:
    repo: str
    files: dict[str, bytes]
    gated: bool = False  # answer 401 with the hub's GatedRepo error code
    private: bool = False  # answer 401 RepoNotFound (not found, or private and no token)
    break_after: dict[str, int] = field(default_factory=dict)  # file → bytes sent before it fails
    drop_once: dict[str, int] = field(default_factory=dict)  # file → bytes its first download gets
    log: list[tuple[str, str, str | None]] = field(default_factory=list)  # (method, path, Range)
    others: dict[str, dict[str, bytes]] = field(default_factory=dict)  # more repositories: repo → files

    def start(self) -> "FakeHub":
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                hub._answer(self, body=True)

            def do_HEAD(self):
                hub._answer(self, body=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def downloads(self, repo: str | None = None) -> list[str]:
        """Files of `repo` (default: the main one) whose bytes were sent (GET requests), in order."""
        prefix = f"/{repo or self.repo}/resolve/{COMMIT}/"
        return [path.removeprefix(prefix) for method, path, _ in self.log
                if method == "GET" and path.startswith(prefix)]

    def asked(self, repo: str) -> bool:
        """Whether any request concerned `repo` (its model info or a file)."""
        return any(path.startswith((f"/api/models/{repo}", f"/{repo}/")) for _, path, _ in self.log)

    def _answer(self, request: BaseHTTPRequestHandler, body: bool) -> None:
        path = unquote(urlparse(request.path).path)
        self.log.append((request.command, path, request.headers.get("Range")))
        if self.gated or self.private:
            code = "GatedRepo" if self.gated else "RepoNotFound"
            headers = {"X-Error-Code": code, "X-Error-Message": "Access to this model is restricted."}
            return _send(request, 401, b'{"error": "unauthorized"}', headers, body)
        for repo, files in {self.repo: self.files, **self.others}.items():
            info = (f"/api/models/{repo}", f"/api/models/{repo}/revision/main", f"/api/models/{repo}/revision/{COMMIT}")
            if path in info:
                siblings = [{"rfilename": name, "size": len(data)} for name, data in sorted(files.items())]
                payload = json.dumps({"id": repo, "sha": COMMIT, "siblings": siblings, "private": False}).encode()
                return _send(request, 200, payload, {"Content-Type": "application/json"}, body)
            for revision in ("main", COMMIT):
                prefix = f"/{repo}/resolve/{revision}/"
                if path.startswith(prefix) and path.removeprefix(prefix) in files:
                    return self._file(request, files, path.removeprefix(prefix), body)
        if path.startswith("/api/models/"):
            headers = {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}
            return _send(request, 404, b'{"error": "Repository not found"}', headers, body)
        return _send(request, 404, b"not found", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT}, body)

    def _file(self, request: BaseHTTPRequestHandler, files: dict[str, bytes], name: str, body: bool) -> None:
        data = files[name]
        headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                   "Accept-Ranges": "bytes"}
        start = int(request.headers["Range"].removeprefix("bytes=").split("-")[0]) if request.headers.get("Range") else 0
        if not body:
            return _send(request, 200, b"", {**headers, "Content-Length": str(len(data))}, body=False)
        cut = self.break_after.get(name)
        if cut is not None and start >= cut:
            return _send(request, 500, b"internal error", headers, body)
        status = 206 if start else 200
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        request.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(data) - start)}.items():
            request.send_header(key, value)
        request.end_headers()
        if cut is None and start == 0:
            cut = self.drop_once.pop(name, None)
        end = len(data) if cut is None else cut
        request.wfile.write(data[start:end])
        if cut is not None:
            request.close_connection = True  # the rest never comes: the client sees a short body


def _send(request: BaseHTTPRequestHandler, status: int, payload: bytes, headers: dict, body: bool) -> None:
    request.send_response(status)
    for key, value in headers.items():
        request.send_header(key, value)
    if "Content-Length" not in headers:
        request.send_header("Content-Length", str(len(payload)))
    request.end_headers()
    if body:
        request.wfile.write(payload)


def released_files(tiny: Path) -> dict[str, bytes]:
    """The tiny model under the released names, full and lite, as a hub repository holds them."""
    files = {}
    for stage in NETWORKS:
        data = (tiny / f"{stage}.safetensors").read_bytes()
        names = {"stage_c": ["stage_c_bf16", "stage_c_lite_bf16", "stage_c"],
                 "stage_b": ["stage_b_bf16", "stage_b_lite_bf16", "stage_b"]}.get(stage, [stage])
        files.update({f"{name}.safetensors": data for name in names})
    for folder in ("text_encoder", "tokenizer"):
        for path in (tiny / folder).iterdir():
            files[f"{folder}/{path.name}"] = path.read_bytes()
    files["README.md"] = b"a model card"
    return files


def extra_repos(reference: Path) -> dict[str, dict[str, bytes]]:
    """The extra networks (cascade_core.released.EXTRA_FILES) as their hub repositories hold them, for
    `FakeHub.others`: the reference's EfficientNet encoder (the released layout) and tiny CLIP vision
    model; the ControlNets are the reference's tiny files, which a model refuses (they are not the
    released layout) but a download takes as any file."""
    contents = {
        "effnet_encoder": (reference / "extras" / "effnet" / "effnet_encoder.safetensors").read_bytes(),
        "controlnet_canny": (reference / "extras" / "controlnet" / "controlnet_canny_tiny.safetensors").read_bytes(),
        "controlnet_inpainting": (reference / "extras" / "controlnet" / "controlnet_inpainting_tiny.safetensors")
        .read_bytes(),
        "controlnet_super_resolution": (reference / "extras" / "controlnet" / "controlnet_sr_tiny.safetensors")
        .read_bytes(),
    }
    repos: dict[str, dict[str, bytes]] = {}
    for name, (repo, path) in EXTRA_FILES.items():
        if name == "image_encoder":
            clip = reference / "extras" / "image_variation" / "clip_vision"
            files = {f"{path}/{f}": (clip / f).read_bytes() for f in IMAGE_ENCODER_FILES}
        else:
            files = {path: contents[name]}
        repos.setdefault(repo, {}).update(files)
    return repos
