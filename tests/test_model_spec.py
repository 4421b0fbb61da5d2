"""``--model MODULE:FACTORY`` runs only what it should (issue 11 item 6)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sepconv.cli import main
from sepconv.cli._model_spec import resolve_factory
from sepconv.errors import ArgumentError


@pytest.mark.parametrize(("spec", "message"), [
    ("os:system", "standard library"),
    ("subprocess:run", "standard library"),
    ("builtins:eval", "standard library"),
    ("torch:relu", "not a Python function or class"),
    ("torch.nn:Linear", None),
    ("sepconv.models:mobilenet_v1", None),
    ("torch:Tensor", "not a torch.nn.Module"),
    ("sepconv.models:available", None),
    ("nonexistent_module_xyz:f", "cannot be imported"),
    ("sepconv.models:nope", "has no attribute"),
    ("sepconv", "MODULE:FACTORY"),
    ("torch.nn.functional:conv2d", "not a Python function or class"),
])
def test_resolve_factory_checks_before_calling(spec: str, message: str | None) -> None:
    if message is None:
        assert callable(resolve_factory(spec))
    else:
        with pytest.raises(ArgumentError, match=message):
            resolve_factory(spec)


def test_reexported_names_from_another_package_are_refused() -> None:
    with pytest.raises(ArgumentError, match="defined in"):
        resolve_factory("sepconv.study.data:Path")


def test_user_module_next_to_the_user_and_non_module_results(tmp_path: Path) -> None:
    (tmp_path / "mynets.py").write_text(textwrap.dedent("""
        import torch
        def make_net(width: int = 8):
            return torch.nn.Sequential(torch.nn.Conv2d(3, width, 3, padding=1), torch.nn.ReLU(),
                                       torch.nn.Conv2d(width, width, 3, padding=1))
        def not_a_model():
            return 42
    """))
    import torch

    torch.save(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                   torch.nn.Conv2d(8, 8, 3, padding=1)).state_dict(), tmp_path / "w.pt")
    base = [sys.executable, "-m", "sepconv", "convert", "w.pt", "out.pt", "--budget", "0.5",
            "--input-shape", "1,3,16,16", "--model"]
    done = subprocess.run([*base, "mynets:make_net"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.pt").exists()
    done = subprocess.run([*base, "mynets:not_a_model"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "not a torch.nn.Module" in done.stderr and "Traceback" not in done.stderr


def test_cli_refuses_os_system_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    torch.save({}, tmp_path / "w.pt")
    marker = tmp_path / "PWNED"
    status = main(["convert", str(tmp_path / "w.pt"), str(tmp_path / "o.pt"), "--budget", "0.5", "--model",
                   "os:system", "--model-args", f'{{"command": "touch {marker}"}}'])
    err = capsys.readouterr().err
    assert status == 2 and "standard library" in err and err.count("\n") == 1
    assert not marker.exists()
