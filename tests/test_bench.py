from __future__ import annotations

import json
from pathlib import Path

import pytest

from sepconv.cli import main
from sepconv.errors import ArgumentError
from sepconv.study.bench import machine, mobilenet_shapes, run_benchmarks


def test_quick_report_structure() -> None:
    report = run_benchmarks(quick=True, repeats=2, onnx=False)
    assert len(report["cases"]) == 2 and len(report["spatial"]) == 1
    case = report["cases"][0]
    assert set(case["median_ms"]) == {"standard", "standard_prepacked", "plain", "channels_last", "sepconv",
                                      "depthwise_step"}
    assert case["mac_ratio"] == pytest.approx(16 * 32 * 9 / (16 * 9 + 16 * 32))
    assert case["fraction_of_mac_ratio"] == pytest.approx(case["speedup_sepconv"] / case["mac_ratio"])
    assert report["summary"]["copy_bandwidth_gbps"] > 0
    assert case["fraction_vs_prepacked_standard"] == pytest.approx(
        case["median_ms"]["standard_prepacked"] / case["median_ms"]["sepconv"] / case["mac_ratio"])
    assert len(report["machine"]["load_average"]) == 3


def test_machine_and_shapes() -> None:
    info = machine()
    assert info["cores"] >= 1 and info["torch"]
    assert len(mobilenet_shapes()) == 9 and (1024, 1024, 7, 1) in mobilenet_shapes()


def test_cli_bench_quick_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--repeats", "2", "--no-onnx", "--threads", "1", "--json", str(path)]) == 0
    assert "summary" in capsys.readouterr().out
    data = json.loads(path.read_text())
    assert data["repeats"] == 2 and data["end_to_end"]["speedup"] > 0


@pytest.mark.parametrize("argv, message", [
    (["bench", "--repeats", "0"], "--repeats must be >= 1"),
    (["bench", "--batch", "0"], "--batch must be >= 1"),
    (["bench", "--threads", "0"], "--threads must be >= 1"),
    (["bench", "--threads", "1000"], "--threads must be at most"),
    (["bench", "--batch", "10000000"], "batches: batch 10000000 needs about"),
    (["bench", "--quick", "--json", "/no/such/dir/x.json"], "does not exist"),
])
def test_cli_bench_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_run_benchmarks_bad_arguments() -> None:
    with pytest.raises(ArgumentError, match="repeats"):
        run_benchmarks(repeats=0)
    with pytest.raises(ArgumentError, match="batches"):
        run_benchmarks(batches=(0,))


def test_cli_bench_prints_each_case_the_duration_and_readable_labels(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--quick", "--repeats", "2", "--no-onnx", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("sepconv bench: 5 cases x 2 interleaved rounds on 1 thread(s); expected about ")
    assert "Ctrl-C stops and keeps the finished cases" in lines[0]
    assert lines[1].startswith("[1/5] depthwise separable 16->32 @16 s1 b1: sepconv ") and "fewer MACs" in lines[1]
    assert lines[5].startswith("[5/5] copy bandwidth: ")
    assert "spatial_slower_when_fewer_macs" not in out and "_fraction" not in out  # no raw keys
    assert "share of the MAC ratio (1 = the full theoretical gain)" in out


def test_summary_explains_every_ratio_below_one() -> None:
    from sepconv.study.bench_summary import LABELS, explain

    summary = {key: 0.5 for key in LABELS if key not in ("copy_bandwidth_gbps", "spatial_slower_when_fewer_macs")}
    summary |= {"copy_bandwidth_gbps": 20.0, "spatial_slower_when_fewer_macs": 2}
    lines = explain(summary)
    assert len(lines) == len(summary) - 1  # every ratio, plus the spatial count, minus the bandwidth
    assert lines[0].startswith("sepconv's share of the MAC ratio is 0.50, below 1: ") and "memory-bound" in lines[0]
    assert any(line.startswith("2 spatially separable case(s) ran slower") for line in lines)
    assert explain({"sepconv_vs_plain": 1.3, "copy_bandwidth_gbps": 0.5}) == []


def test_ctrl_c_keeps_the_finished_cases(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from sepconv.study import bench

    calls = []
    run = bench.Case.run

    def interrupted_third(self: bench.Case, repeats: int, onnx: bool, tmp: str) -> dict:
        calls.append(self)
        if len(calls) == 4:  # the probe of the expected duration, then two cases, then Ctrl-C
            raise KeyboardInterrupt
        return run(self, repeats, onnx, tmp)

    monkeypatch.setattr(bench.Case, "run", interrupted_third)
    path = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--repeats", "2", "--no-onnx", "--json", str(path)]) == 130
    out = capsys.readouterr().out
    data = json.loads(path.read_text())
    assert data["interrupted"] is True and len(data["cases"]) == 2 and data["spatial"] == []
    assert "sepconv_fraction_of_mac_ratio" in data["summary"] and "end_to_end_speedup" not in data["summary"]
    assert "(interrupted: the tables hold the cases that finished)" in out and "(the finished cases)" in out
