"""app.py flags and the GRADIO_SERVER_* environment variables."""
import pytest

import app
from cascade_core import runtime


def test_defaults(monkeypatch):
    for name in ("GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "CASCADE_MODEL"):
        monkeypatch.delenv(name, raising=False)
    args = app.parse_args([])
    assert (args.host, args.port, args.outputs, args.model, args.demo) == ("127.0.0.1", 7860, "outputs", "stabilityai/stable-cascade", False)
    assert (args.variant, args.weights, args.offload, args.compile) == ("auto", "bf16", "none", "none")


def test_compile_modes(capsys):
    assert app.parse_args(["--compile", "reduce-overhead"]).compile == "reduce-overhead"
    with pytest.raises(SystemExit):
        app.parse_args(["--compile", "fastest"])
    assert "max-autotune" in capsys.readouterr().err


def test_environment_and_flags(monkeypatch):
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "8000")
    assert (app.parse_args([]).host, app.parse_args([]).port) == ("0.0.0.0", 8000)
    args = app.parse_args(["--port", "9000", "--model", "m", "--variant", "lite", "--offload", "model", "--share",
                           "--auth", "a:b", "--outputs", "out", "--device", "cpu"])
    assert (args.port, args.model, args.variant, args.offload, args.share, args.auth, args.outputs, args.device) == \
        (9000, "m", "lite", "model", True, "a:b", "out", "cpu")


def test_bad_auth_is_refused():
    with pytest.raises(SystemExit, match="user:pass"):
        app.main(["--demo", "--auth", "nocolon"])


@pytest.mark.parametrize("device, reused", [("auto", True), ("cpu", True), ("cuda", False)])
def test_host_buffers_are_shared_before_the_server_starts(monkeypatch, device, reused):
    calls = []
    monkeypatch.setattr(runtime, "reuse_host_buffers", lambda: calls.append(1))
    with pytest.raises(SystemExit, match="user:pass"):  # stops right after the allocator is set up
        app.main(["--demo", "--device", device, "--auth", "nocolon"])
    assert calls == ([1] if reused else [])
