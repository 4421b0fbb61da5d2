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
    assert 0 < rows["convert"]["calibration_images_used"] <= rows["convert"]["calibration_images"]
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
    # a parent that ignores SIGINT (a background `make test &`) passes that on to children: restore the default
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
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


def test_amp_plan_and_eta_are_reported(tmp_path: Path) -> None:
    lines: list[str] = []
    results = run_study(_config(tmp_path, variants=("standard", "depthwise"), epochs=1, finetune_epochs=None,
                                amp=True), log=lines.append)
    config = results["config"]
    assert config["amp"] is True and config["epochs"] == 1 and config["finetune_epochs"] == 1
    assert config["threads"] == 1 and config["device"] in ("cpu", "cuda:0")
    assert results["automatic"] == ["finetune_epochs", "threads", "device"]
    plan = next(line for line in lines if line.startswith("plan:"))
    assert plan.startswith("plan: 1 epoch, 1 CPU thread (chosen for 8x8 images)") and "bfloat16 mixed" in plan
    assert "expected training time about" in plan and "2 runs to train" in plan
    assert any(line.startswith("standard") and line.endswith("left") for line in lines)  # ETA after each run
    assert all(0 <= row["acc_mean"] <= 100 for row in results["summary"])


def test_convert_finetune_scales_with_epochs() -> None:
    config = StudyConfig(epochs=6, device="cpu").check().resolved(1295, (1, 8, 8))
    assert (config.epochs, config.finetune_epochs) == (6, 2)
    assert StudyConfig(epochs=1).check().resolved(1295, (1, 8, 8)).finetune_epochs == 1
    assert StudyConfig(epochs=1, finetune_epochs=4).check().resolved(1295, (1, 8, 8)).finetune_epochs == 4


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a GPU")
def test_cuda_runs_repeat_exactly(tmp_path: Path) -> None:
    a = run_study(_config(tmp_path / "a", variants=("standard", "depthwise"), device="cuda"))
    b = run_study(_config(tmp_path / "b", variants=("standard", "depthwise"), device="cuda"))
    assert a["config"]["device"] == "cuda:0" and a["latency"]["depthwise"]["batch64_ms"] > 0
    assert [r["history"] for r in a["runs"]["depthwise"]] == [r["history"] for r in b["runs"]["depthwise"]]


def test_device_checks() -> None:
    with pytest.raises(ArgumentError, match="device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'tpu'"):
        StudyConfig(device="tpu").check()
    if not __import__("torch").cuda.is_available():
        with pytest.raises(ArgumentError, match="torch sees no GPU"):
            StudyConfig(device="cuda").check()


def _row(variant: str, acc: float, std: float, seeds: int, macs: int = 100, training: str = "15") -> dict:
    return {"variant": variant, "params": 10, "macs": macs, "latency_b1_ms": None, "latency_b64_ms": None,
            "train_time_s": 1.0, "acc_mean": acc, "acc_std": std, "seeds": seeds, "training": training}


def test_one_seed_says_n1_and_draws_no_accuracy_conclusion() -> None:
    from sepconv.study.report import findings, table_rows

    summary = [_row("standard", 99.0, 0.0, 1, 900), _row("depthwise", 97.0, 0.0, 1, 100),
               _row("depthwise-early", 98.0, 0.0, 1, 500), _row("depthwise-late", 99.0, 0.0, 1, 500)]
    header, rows = table_rows(summary)
    cells = dict(zip(header, rows[1]))
    assert cells["test accuracy %"] == "97.00 (n=1)" and "±" not in " ".join(r[-1] for r in rows)
    lines = findings(summary)
    assert "9.00x fewer multiply-adds" in lines[0] and "single seed (n=1)" in lines[0]
    assert "no conclusion on accuracy" in lines[0] and "better" not in " ".join(lines)


def test_findings_only_beyond_the_seed_spread() -> None:
    from sepconv.study.report import findings

    summary = [_row("standard", 99.0, 0.1, 3, 900), _row("depthwise", 97.0, 0.2, 3, 100),
               _row("spatial", 98.9, 0.5, 3, 500), _row("depthwise-early", 96.0, 0.1, 3, 500),
               _row("depthwise-late", 98.0, 0.1, 3, 500)]
    lines = findings(summary)
    assert "accuracy -2.00 points, beyond the seed spread (±0.22)" in lines[0]
    assert "accuracy -0.10 points, within the seed spread (±0.51): no accuracy difference shown" in lines[1]
    assert lines[-1].endswith("beyond the seed spread (±0.14): late placement is better.")


def test_table_states_each_training_budget(tmp_path: Path) -> None:
    results = run_study(_config(tmp_path, variants=("standard", "convert"), convert_budget=0.5, epochs=3,
                                finetune_epochs=None))
    rows = {r["variant"]: r for r in results["summary"]}
    assert rows["standard"]["training"] == "3" and rows["convert"]["training"] == "3 + 1 FT"
    assert len(results["runs"]["convert"][0]["history"]) == 1  # a third of the 3 epochs
    report = (tmp_path / "report.md").read_text()
    assert "| epochs |" in report and "| 3 + 1 FT |" in report and "plus 1 fine-tune epoch" in report


def test_two_processes_same_seed_same_numbers(tmp_path: Path) -> None:
    """What `make demo` relies on: a fresh process repeats the numbers exactly (same seed, threads, machine)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    args = [sys.executable, "-m", "sepconv", "study", "--variants", "depthwise", "--widths", "8,16", "--stem", "4",
            "--epochs", "2", "--seeds", "1", "--latency-reps", "1", "--no-plots", "--threads", "1", "--json"]
    runs = []
    for name in ("a", "b"):
        proc = subprocess.run([*args, "--out", str(tmp_path / name)], env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        results = json.loads(proc.stdout)
        runs.append({v: [(r["test_acc"], r["history"]) for r in rs] for v, rs in results["runs"].items()})
    assert runs[0] == runs[1]


def test_lock_refuses_a_second_study_on_the_same_folder(tmp_path: Path) -> None:
    from sepconv.study.folder import lock

    with lock(tmp_path), pytest.raises(ArgumentError, match=r"is in use by another sepconv study \(pid \d+\)"):
        run_study(_config(tmp_path, variants=("depthwise",)))
    assert not (tmp_path / "results.json").exists()  # the second study wrote nothing
    run_study(_config(tmp_path, variants=("depthwise",), epochs=1))  # released: the folder is usable again


def test_lock_across_processes(tmp_path: Path) -> None:
    code = ("import sys, time; from pathlib import Path; from sepconv.study.folder import lock\n"
            "with lock(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(60)")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(ArgumentError, match=f"pid {holder.pid}"):
            run_study(_config(tmp_path, variants=("depthwise",)))
    finally:
        holder.kill()
        holder.communicate()


def test_resume_refuses_changed_data(tmp_path: Path) -> None:
    import numpy as np

    data = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(data, x=rng.random((60, 8, 8)), y=np.arange(60) % 3)
    config = {"data": f"npz:{data}", "variants": ("depthwise",), "epochs": 1}
    first = run_study(_config(tmp_path / "run", **config))
    assert len(first["data"]["sha256"]) == 64
    np.savez(data, x=rng.random((60, 8, 8)), y=np.arange(60) % 3)  # same path, other content
    with pytest.raises(ArgumentError, match=r"the data 'npz:.*d.npz' changed since the study started"):
        run_study(_config(tmp_path / "run", resume=True, **config))


def test_resume_with_damaged_files_one_clear_error(tmp_path: Path) -> None:
    from sepconv.errors import DataFormatError

    out = tmp_path / "run"

    def stop(variant: str, seed: int, epoch: int) -> None:
        if variant == "depthwise":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_study(_config(out, variants=("standard", "depthwise"), epochs=2), on_epoch=stop)
    checkpoint = out / "checkpoints" / "depthwise-seed0.pt"
    good = checkpoint.read_bytes()
    checkpoint.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataFormatError, match=r"checkpoint '.*depthwise-seed0.pt' is damaged .*delete it"):
        run_study(_config(out, variants=("standard", "depthwise"), epochs=2, resume=True))
    checkpoint.write_bytes(good)
    results = json.loads((out / "results.json").read_text())
    for edit, match in ((lambda r: r["runs"]["standard"][0].update(test_acc="99%"), "runs of 'standard' are damaged"),
                        (lambda r: r.update(costs={"standard": {"params": "many"}}), "'costs' is damaged"),
                        (lambda r: r.pop("runs"), "no 'config' and 'runs'")):
        edited = json.loads(json.dumps(results))
        edit(edited)
        (out / "results.json").write_text(json.dumps(edited))
        with pytest.raises(DataFormatError, match=match):
            run_study(_config(out, variants=("standard", "depthwise"), epochs=2, resume=True))
    (out / "results.json").write_text("{not json")
    with pytest.raises(DataFormatError, match="not a sepconv study results file"):
        run_study(_config(out, variants=("standard", "depthwise"), epochs=2, resume=True))
    (out / "results.json").write_text(json.dumps(results))
    resumed = run_study(_config(out, variants=("standard", "depthwise"), epochs=2, resume=True))
    assert set(resumed["runs"]) == {"standard", "depthwise"}  # nothing was lost


def test_out_on_a_file_or_under_one(tmp_path: Path) -> None:
    afile = tmp_path / "f"
    afile.write_text("keep me")
    with pytest.raises(ArgumentError, match=r"out '.*f' is a file; the study writes a folder"):
        run_study(_config(afile))
    with pytest.raises(ArgumentError, match=r"out '.*f/run' lies under '.*f', which is a file"):
        run_study(_config(afile / "run"))
    assert afile.read_text() == "keep me"


def test_diverged_training_stops_with_one_line_and_valid_json(tmp_path: Path) -> None:
    from sepconv.study.report import write_json
    from sepconv.study.training import TrainingDivergedError

    with pytest.raises(TrainingDivergedError, match=r"training of depthwise seed 0 diverged .*lower --lr"):
        run_study(_config(tmp_path, variants=("depthwise",), lr=1e30, weight_decay=0.0))
    json.loads((tmp_path / "results.json").read_text())  # valid JSON, the finished state
    write_json(tmp_path / "x.json", {"loss": float("nan"), "h": [float("inf"), 1.0]})
    text = (tmp_path / "x.json").read_text()
    assert "NaN" not in text and "Infinity" not in text and json.loads(text) == {"loss": None, "h": [None, 1.0]}
