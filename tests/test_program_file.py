"""Loading a .pt2 never runs code hidden in it (issue 11 item 5): crafted archives are refused, nothing runs."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from sepconv.cli import main
from sepconv.errors import DataFormatError
from sepconv.program_file import UnsafeProgramError, load_program


class Payload:
    """Unpickling this object creates the marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _program(path: Path) -> Path:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3))
    torch.export.save(torch.export.export(model.eval(), (torch.randn(1, 3, 12, 12),)), path)
    return path


def _rewrite(source: Path, target: Path, change) -> Path:
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info.filename, data)
    return target


def _pickled_weight(name: str, data: bytes, marker: Path) -> bytes:
    if name.endswith("data/weights/model_weights_config.json"):
        config = json.loads(data)
        first = next(iter(config["config"]))
        config["config"][first]["use_pickle"] = True
        return json.dumps(config).encode()
    if name.endswith("data/weights/weight_0"):
        buffer = io.BytesIO()
        torch.save(Payload(marker), buffer)
        return buffer.getvalue()
    return data


def _pickled_inputs(name: str, data: bytes, marker: Path) -> bytes:
    if name.endswith("data/sample_inputs/model.pt"):
        buffer = io.BytesIO()
        torch.save(Payload(marker), buffer)
        return buffer.getvalue()
    return data


CRAFTS = {
    "pickled_weight": _pickled_weight,
    "pickled_sample_inputs": _pickled_inputs,
}


@pytest.mark.parametrize("craft", sorted(CRAFTS))
def test_crafted_archives_are_refused_and_nothing_runs(tmp_path: Path, craft: str) -> None:
    marker = tmp_path / "PWNED"
    evil = _rewrite(_program(tmp_path / "good.pt2"), tmp_path / "evil.pt2",
                    lambda name, data: CRAFTS[craft](name, data, marker))
    with pytest.raises(UnsafeProgramError, match="refused"):
        load_program(evil)
    assert not marker.exists()


def test_the_crafted_weight_would_run_code_through_torch_export_load(tmp_path: Path) -> None:
    """The threat is real: torch's own loader runs the payload (this is what load_program prevents)."""
    marker = tmp_path / "PWNED"
    evil = _rewrite(_program(tmp_path / "good.pt2"), tmp_path / "evil.pt2",
                    lambda name, data: _pickled_weight(name, data, marker))
    with contextlib.suppress(Exception):  # the payload is not a tensor, so loading fails after it ran
        torch.export.load(evil)
    assert marker.exists()


def test_unexpected_members_are_refused(tmp_path: Path) -> None:
    good = _program(tmp_path / "good.pt2")
    with zipfile.ZipFile(good, "a") as archive:
        top = archive.namelist()[0].split("/")[0]
        archive.writestr(f"{top}/data/constants/custom_obj_0", pickle.dumps([1, 2]))
    with pytest.raises(UnsafeProgramError, match="custom_obj_0"):
        load_program(good)


def test_plain_programs_load_and_non_archives_get_a_clear_error(tmp_path: Path) -> None:
    assert isinstance(load_program(_program(tmp_path / "good.pt2")), torch.export.ExportedProgram)
    (tmp_path / "text.pt2").write_text("not a zip")
    with pytest.raises(DataFormatError, match=r"not a torch\.export archive"):
        load_program(tmp_path / "text.pt2")


def test_cli_convert_refuses_the_crafted_file_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "PWNED"
    evil = _rewrite(_program(tmp_path / "good.pt2"), tmp_path / "evil.pt2",
                    lambda name, data: _pickled_weight(name, data, marker))
    status = main(["convert", str(evil), str(tmp_path / "out.pt2"), "--budget", "0.5"])
    err = capsys.readouterr().err
    assert status == 2 and "refused" in err and err.count("\n") == 1 and "Traceback" not in err
    assert not marker.exists() and not (tmp_path / "out.pt2").exists()
