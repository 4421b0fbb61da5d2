"""The command line answers help and argument errors before torch loads, and Ctrl-C at start-up is one line."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from sepconv.cli import build_parser

COMMANDS = sorted(n for n in build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def _loaded_after(argv: list[str]) -> subprocess.CompletedProcess:
    """Run ``sepconv ARGV`` in a fresh interpreter; stdout's last line lists the heavy modules it loaded."""
    return _python(f"""
import sys
from sepconv.cli import main
status = main({argv!r})
print(status, sorted(m for m in ("torch", "matplotlib", "onnx", "rich") if m in sys.modules))
""")


@pytest.mark.parametrize("argv", [["--help"], ["--version"], *([c, "--help"] for c in COMMANDS)],
                         ids=lambda argv: " ".join(argv))
def test_help_does_not_import_torch(argv: list[str]) -> None:
    result = _loaded_after(argv)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "0 []", result.stdout[-300:]


@pytest.mark.parametrize("argv", [
    ["convert", "in.pt", "out.pt", "--method", "nope", "--budget", "0.5"],
    ["study", "--epochs", "many"],
    ["filter", "in.png", "out.png"],  # --kernel is required
    ["cost", "--conv", "dense"],
    ["nosuchcommand"],
], ids=lambda argv: " ".join(argv))
def test_argument_errors_do_not_import_torch(argv: list[str]) -> None:
    result = _loaded_after(argv)
    assert result.stdout.strip().splitlines()[-1] == "2 []"
    assert result.stderr.startswith("sepconv: error: ") and "Traceback" not in result.stderr


def test_import_sepconv_is_light_and_names_load_on_use() -> None:
    result = _python("""
import sys
import sepconv
light = "torch" not in sys.modules
import sepconv.convert  # the submodule import must not hide the function sepconv.convert
print(light, callable(sepconv.convert), callable(sepconv.optimize), sepconv.SeparableConv2d.__name__,
      sepconv.layers.__name__, "StudyConfig" in dir(sepconv))
""")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "True", "SeparableConv2d", "sepconv.layers", "True"]


def test_ctrl_c_while_torch_loads_is_one_line() -> None:
    """A KeyboardInterrupt raised while the command imports torch: exit 130, one line, no traceback."""
    result = _python("""
import builtins, sys
from sepconv.cli import main
real_import = builtins.__import__
def interrupting_import(name, *args, **kwargs):
    if name == "torch" or name.startswith("torch."):
        raise KeyboardInterrupt
    return real_import(name, *args, **kwargs)
builtins.__import__ = interrupting_import
sys.exit(main(["cost", "--in", "8", "--out", "16", "--kernel", "3"]))
""")
    assert result.returncode == 130
    assert result.stderr.strip() == "sepconv: interrupted"


def _options() -> list[tuple[str, argparse.Action]]:
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    return [(name, action) for name, parser in commands.items() for action in parser._actions
            if action.option_strings and not isinstance(action, argparse._HelpAction)]


@pytest.mark.parametrize(("command", "action"), _options(), ids=lambda v: v if isinstance(v, str) else v.dest)
def test_help_states_every_default(command: str, action: argparse.Action) -> None:
    """An option with a value when not given says what it is; choices are listed by argparse itself."""
    if action.default not in (None, False) and not action.required:
        assert "default" in (action.help or "").lower(), f"{command} {action.option_strings[0]}: {action.help!r}"


@pytest.mark.parametrize(("command", "option", "shown"), [
    ("convert", "--method", "{depthwise,spatial}"),
    ("convert", "--refit", "{pointwise,alternating,none}"),
    ("export", "--conv", "{depthwise,standard,spatial}"),
    ("cost", "--conv", "{depthwise,standard,spatial}"),
    ("filter", "--border", "{reflect,reflect101,replicate,constant,wrap}"),
    ("study", "--batch-size", "default 64"),
    ("study", "--lr", "default 0.003"),
    ("study", "--weight-decay", "default 0.0001"),
    ("study", "--stem", "default 16"),
    ("study", "--kernel-size", "default 3"),
])
def test_help_text_shows_choices_and_defaults(command: str, option: str, shown: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from sepconv.cli import main

    assert main([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    line = text[text.rindex(f"{option} "):][:400]  # the options section, after the usage line
    assert shown in line, line
