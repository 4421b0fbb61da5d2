from __future__ import annotations

import pytest

from sepconv.cli import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("sepconv ")


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "demo" in out and "seeds" in out


def test_unknown_command_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice" in err and "Traceback" not in err


def test_seeds_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["seeds"]) == 0
    out = capsys.readouterr().out
    for number in ("25", "10", "864", "123", "1,228,800", "53,952"):
        assert number in out
