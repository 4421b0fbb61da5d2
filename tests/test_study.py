from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sepconv import ArgumentError
from sepconv.study import StudyConfig, run_study

TINY = {"widths": (8, 16), "stem": 4, "epochs": 2, "seeds": 1, "latency_reps": 1, "finetune_epochs": 1}


def _config(out: Path, **kw: object) -> StudyConfig:
    return StudyConfig(out=out, **{**TINY, "plots": False, **kw})  # type: ignore[arg-type]


def test_results_report_and_plots(tmp_path: Path) -> None:
    results = run_study(_config(tmp_path, variants=("standard", "spatial", "depthwise-early", "depthwise-late"),
                                seeds=2, plots=True))
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert [r["variant"] for r in on_disk["summary"]] == ["standard", "spatial", "depthwise-early", "depthwise-late"]
    for row in on_disk["summary"]:
        assert row["seeds"] == 2 and 0 <= row["acc_mean"] <= 100 and row["acc_std"] >= 0
        assert row["params"] > 0 and row["macs"] > 0 and row["latency_b1_ms"] > 0 and row["latency_b64_ms"] > 0
        assert len(on_disk["runs"][row["variant"]][0]["history"]) == 2
    assert on_disk["summary"] == results["summary"]
    report = (tmp_path / "report.md").read_text()
    assert "| variant | params | MACs |" in report and "test accuracy %" in report
    assert "**spatial**" in report and "fewer multiply-adds" in report
    assert "Placement (depthwise" in report
    for png in ("accuracy_vs_macs.png", "training_curves.png", "separable_filters.png"):
        assert (tmp_path / png).stat().st_size > 10_000 and f"]({png})" in report


def test_same_seed_same_result(tmp_path: Path) -> None:
    a = run_study(_config(tmp_path / "a", variants=("depthwise",)))
    b = run_study(_config(tmp_path / "b", variants=("depthwise",)))
    assert a["runs"]["depthwise"][0]["history"] == b["runs"]["depthwise"][0]["history"]


def test_resume_after_interruption(tmp_path: Path) -> None:
    reference = run_study(_config(tmp_path / "ref", variants=("standard", "depthwise"), epochs=3))
    calls: list[tuple[str, int, int]] = []

    def interrupt(variant: str, seed: int, epoch: int) -> None:
        calls.append((variant, seed, epoch))
        if (variant, epoch) == ("depthwise", 1):
            raise KeyboardInterrupt

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_study(_config(out, variants=("standard", "depthwise"), epochs=3), on_epoch=interrupt)
    saved = json.loads((out / "results.json").read_text())
    assert list(saved["runs"]) == ["standard"] and (out / "checkpoints" / "depthwise-seed0.pt").exists()
    with pytest.raises(ArgumentError, match="pass --resume"):
        run_study(_config(out, variants=("standard", "depthwise"), epochs=3))
    with pytest.raises(ArgumentError, match="epochs=3, got epochs=4"):
        run_study(_config(out, variants=("standard", "depthwise"), epochs=4, resume=True))
    calls.clear()
    resumed = run_study(_config(out, variants=("standard", "depthwise"), epochs=3, resume=True), on_epoch=interrupt)
    assert calls == [("depthwise", 0, 2), ("depthwise", 0, 3)]  # standard not redone, depthwise from epoch 2
    for variant in ("standard", "depthwise"):
        assert resumed["runs"][variant][0]["test_acc"] == reference["runs"][variant][0]["test_acc"]
        assert resumed["runs"][variant][0]["history"] == reference["runs"][variant][0]["history"]
    fresh = run_study(_config(out, variants=("standard",), epochs=3, overwrite=True))
    assert list(fresh["runs"]) == ["standard"]


def test_convert_variant(tmp_path: Path) -> None:
    results = run_study(_config(tmp_path, variants=("standard", "convert"), convert_budget=0.5))
    rows = {r["variant"]: r for r in results["summary"]}
    assert rows["convert"]["macs"] <= 0.55 * rows["standard"]["macs"]
    assert 0 <= rows["convert"]["acc_before_finetune_mean"] <= 100
    assert results["runs"]["convert"][0]["conversion"]["mac_ratio"] <= 0.5
    assert "right after `sepconv.convert`" in (tmp_path / "report.md").read_text()
    # issue 14: the accuracy after the calibrated refit (no training) is reported beside the weight-only one
    assert 0 <= rows["convert"]["acc_calibrated_mean"] <= 100 and rows["convert"]["calibration_images"] > 0
    assert "after the calibrated refit (no training" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize(("kw", "match"), [
    ({"seeds": 0}, "seeds must be a positive int"),
    ({"variants": ("standard", "nope")}, "unknown variant 'nope'"),
    ({"variants": ("convert",)}, "add 'standard'"),
    ({"variants": ("standard", "standard")}, "must not repeat"),
    ({"convert_budget": 1.5}, r"convert_budget must be a number in \(0, 1\]"),
    ({"lr": 0.0}, "lr must be a positive number"),
    ({"data": "mnist"}, "needs a path"),
    ({"resume": True, "overwrite": True}, "exclude each other"),
    ({"seed": -1}, "seed must be an int >= 0"),
])
def test_bad_config(tmp_path: Path, kw: dict, match: str) -> None:
    with pytest.raises(ArgumentError, match=match):
        _config(tmp_path, **kw).check()


def test_two_processes_match_one(tmp_path: Path) -> None:
    args = ["study", "--variants", "standard", "--widths", "8,16", "--stem", "4", "--epochs", "2", "--seeds", "1",
            "--latency-reps", "1", "--no-plots"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src"), "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
                "sepconv"]
    proc = subprocess.run([*torchrun, *args, "--out", str(tmp_path / "ddp")], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    single = run_study(_config(tmp_path / "one", variants=("standard",)))
    ddp = json.loads((tmp_path / "ddp" / "results.json").read_text())
    assert ddp["world_size"] == 2
    one, two = single["runs"]["standard"][0], ddp["runs"]["standard"][0]
    # same global batches and gradients; only BatchNorm statistics are per process
    assert abs(one["test_acc"] - two["test_acc"]) <= 3.0
    for a, b in zip(one["history"], two["history"]):
        assert abs(a["train_loss"] - b["train_loss"]) <= 0.1 * a["train_loss"]


def test_ctrl_c_leaves_finished_work_on_disk(tmp_path: Path) -> None:
    import signal
    import time

    import torch

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    args = [sys.executable, "-m", "sepconv", "study", "--variants", "standard,depthwise", "--widths", "4,8",
            "--stem", "4", "--epochs", "400", "--seeds", "1", "--no-plots", "--out", str(tmp_path)]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoint = tmp_path / "checkpoints" / "standard-seed0.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "continue with --resume" in err and "Traceback" not in err
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["runs"] == {} and saved["config"]["epochs"] == 400
    state = torch.load(checkpoint, weights_only=True)
    assert state["epoch"] >= 1 and len(json.loads(state["history"])) == state["epoch"]
    assert not list((tmp_path / "checkpoints").glob(".*"))  # no temporary file left behind
