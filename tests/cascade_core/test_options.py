"""One options type: the same flags, defaults and checks for the app and every command."""
import argparse
import dataclasses

import pytest

import app
from cascade_core import EngineOptions, OptionsError
from cascade_core.cli import COMMANDS


def parser_of(command) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command")
    command.add_parser(commands)
    return commands.choices[command.__name__.rpartition(".")[2]]


def engine_flags(parser: argparse.ArgumentParser) -> dict[str, tuple]:
    names = {f.name for f in dataclasses.fields(EngineOptions)}
    return {a.dest: (a.default, a.choices, a.help) for a in parser._actions if a.dest in names and a.option_strings}


def test_defaults_round_trip_through_the_flags(monkeypatch):
    monkeypatch.delenv("CASCADE_MODEL", raising=False)
    parser = argparse.ArgumentParser()
    EngineOptions.add_arguments(parser)
    assert EngineOptions.from_args(parser.parse_args([])) == EngineOptions()
    args = parser.parse_args(["--model", "some/repo", "--device", "cuda:1", "--dtype", "bfloat16", "--variant", "lite",
                              "--weights", "fp32", "--revision", "v2", "--offload", "model", "--force-float16"])
    assert EngineOptions.from_args(args) == EngineOptions(
        model="some/repo", device="cuda:1", dtype="bfloat16", variant="lite", weights="fp32", revision="v2",
        offload="model", force_float16=True)


def test_the_app_and_every_command_declare_the_same_flags(monkeypatch):
    monkeypatch.delenv("CASCADE_MODEL", raising=False)
    full = argparse.ArgumentParser()
    EngineOptions.add_arguments(full)
    declared = engine_flags(full)
    studio = argparse.ArgumentParser()
    monkeypatch.setattr(argparse, "ArgumentParser", lambda *a, **k: studio)
    app.parse_args([])
    assert engine_flags(studio) == declared
    monkeypatch.undo()
    for command in COMMANDS:
        flags = engine_flags(parser_of(command))
        assert flags and all(flags[name] == declared[name] for name in flags), command.__name__


@pytest.mark.parametrize("field, value, message", [
    ("variant", "huge", "unknown variant 'huge'; use one of auto, full, lite"),
    ("dtype", "float8", "unknown dtype 'float8'; use one of auto, float32, bfloat16, float16"),
    ("offload", "gpu", "unknown offload 'gpu'; use one of none, model, sequential"),
    ("compile", "fast", "unknown compile 'fast'; use one of none, default, reduce-overhead, max-autotune"),
    ("weights", "fp8", "unknown weights 'fp8'; use one of bf16, fp32"),
    ("device", "tpu", "unknown device 'tpu'; use auto, cpu, cuda, cuda:N or mps"),
])
def test_bad_values_say_what_is_allowed(field, value, message):
    with pytest.raises(OptionsError) as error:
        EngineOptions(**{field: value})
    assert str(error.value) == message


def test_compiling_with_offload_on_a_gpu_is_refused_but_the_cpu_ignores_offload():
    with pytest.raises(OptionsError, match="compile needs --offload none"):
        EngineOptions(device="auto", offload="model", compile="default")
    assert EngineOptions(device="cpu", offload="model", compile="default").compile == "default"
