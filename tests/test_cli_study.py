from __future__ import annotations

from pathlib import Path

import pytest

from sepconv.cli import main

TINY = ["--widths", "8,16", "--stem", "4", "--epochs", "1", "--seeds", "1", "--latency-reps", "1", "--no-plots"]


def test_study_prints_table_and_writes_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["study", "--variants", "standard,depthwise", "--out", str(tmp_path), *TINY]) == 0
    out = capsys.readouterr().out
    assert "standard" in out and "depthwise" in out and "test accuracy %" in out and "report.md" in out
    assert (tmp_path / "report.md").exists() and (tmp_path / "results.json").exists()
    assert main(["study", "--variants", "standard,depthwise", "--out", str(tmp_path), *TINY]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["study", "--variants", "standard,depthwise", "--out", str(tmp_path), "--resume", *TINY]) == 0


@pytest.mark.parametrize(("args", "message"), [
    (["--seeds", "0"], "seeds must be a positive int, got 0"),
    (["--seeds", "two"], "invalid int value: 'two'"),
    (["--data", "imagenet"], "unknown source 'imagenet'"),
    (["--data", "npz:/no/such.npz"], "does not exist"),
    (["--variants", "standard,bogus"], "unknown variant 'bogus'"),
    (["--epochs", "0"], "epochs must be a positive int"),
    (["--batch-size", "-3"], "batch_size must be a positive int"),
    (["--widths", "8,x"], "--widths must be comma-separated positive ints"),
    (["--widths", "8,0"], "widths must be a positive int"),
    (["--kernel-size", "4"], "kernel_size must be odd"),
    (["--convert-budget", "0"], r"convert_budget must be a number in \(0, 1\]"),
    (["--finetune-epochs", "0"], "finetune_epochs must be a positive int"),
    (["--lr", "-1"], "lr must be a positive number"),
    (["--threads", "0"], r"threads must be an int in \[1, \d+\], got 0"),
    (["--threads", "1000"], r"threads must be an int in \[1, \d+\], got 1000"),
    (["--device", "tpu"], "device must be .auto., .cpu., .cuda. or .cuda:N., got .tpu."),
    (["--epochs", "x"], "argument --epochs: expected an int or 'auto', got 'x'"),
    (["--widths", "100000,100000"], "give a network of about .* parameters; the study trains small CNNs"),
    (["--resume", "--overwrite"], "not allowed with argument"),
])
def test_bad_arguments_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                       message: str) -> None:
    assert main(["study", "--out", str(tmp_path / "run"), *TINY, *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert pytest.importorskip("re").search(message, err), err


def test_interrupt_exit_130_points_to_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from sepconv import study

    def interrupted(*args: object, **kwargs: object) -> dict:
        raise KeyboardInterrupt

    monkeypatch.setattr(study, "run_study", interrupted)
    monkeypatch.setattr("sepconv.study.run_study", interrupted)
    assert main(["study", "--out", str(tmp_path), *TINY]) == 130
    err = capsys.readouterr().err
    assert "continue with --resume" in err and "interrupted" in err


def test_estimate_prints_the_plan_and_trains_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["study", "--estimate", "--variants", "standard,convert", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("plan: 15 epochs (chosen for 1295 training images), convert fine-tune 5 epochs")
    assert "6 runs to train, expected training time about" in out and not (tmp_path / "run").exists()


def test_help_shows_auto_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["study", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for expected in ("--device auto|cpu|cuda|cuda:N", "--amp", "--epochs N|auto", "default auto: about 30,000",
                     "--batch-size BATCH_SIZE global batch size (default 64)", "AdamW weight decay (default 0.0001)"):
        assert expected in text, expected


def test_out_is_a_file_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f").write_text("x")
    assert main(["study", "--out", str(tmp_path / "f"), *TINY]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file; the study writes a folder" in err


def test_disk_full_one_line_nothing_lost(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import json

    import torch

    out = tmp_path / "run"
    assert main(["study", "--variants", "standard", "--out", str(out), *TINY]) == 0
    before = (out / "results.json").read_text()
    capsys.readouterr()

    def full(obj: object, path: object, *args: object, **kwargs: object) -> None:
        with open(path, "wb") as handle:  # type: ignore[call-overload]
            handle.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(torch, "save", full)
    assert main(["study", "--variants", "standard,depthwise", "--out", str(out), "--resume", *TINY]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("sepconv study: no space left on the device writing ") and "--resume" in err[-1]
    assert "Traceback" not in "\n".join(err)
    assert json.loads((out / "results.json").read_text())["runs"] == json.loads(before)["runs"]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["standard-seed0.pt"]  # no partial file left


def test_damaged_checkpoint_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["study", "--variants", "standard", "--out", str(out), *TINY]) == 0
    (out / "checkpoints" / "standard-seed0.pt").write_bytes(b"garbage")
    capsys.readouterr()
    # a new variant: all variants are timed again, which reads the finished run's checkpoint
    assert main(["study", "--variants", "standard,depthwise", "--out", str(out), "--resume", *TINY]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("sepconv: error: checkpoint ")
    assert "standard-seed0.pt' is damaged (not a weights-only" in last
