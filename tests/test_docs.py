"""The examples of docs/*.md run as written: doctests as ``python -m doctest docs/X.md`` runs them, other Python
blocks as scripts. A block preceded by ``<!-- test: needs cuda -->`` runs only where torch sees a GPU; one preceded
by ``<!-- test: skip (reason) -->`` is a fragment that cannot run alone (the reason says why)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
BLOCK = re.compile(r"(?:<!-- test: (?P<mark>[^>]*?) -->\n)?```python\n(?P<code>.*?)```", re.S)
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "KERAS_BACKEND": "torch"}
SCRIPTS = [(path, i, m["mark"] or "", m["code"]) for path in DOCS
           for i, m in enumerate(BLOCK.finditer(path.read_text())) if ">>>" not in m["code"]]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run Python in ``cwd`` (a temporary folder: what the examples write never lands in the checkout)."""
    return subprocess.run([sys.executable, *args], env=ENV, capture_output=True, text=True, timeout=600, cwd=cwd)


@pytest.mark.parametrize("path", [p for p in DOCS if ">>>" in p.read_text()], ids=lambda p: p.name)
def test_doctests_pass(path: Path, tmp_path: Path) -> None:
    proc = _run(["-m", "doctest", str(path)], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


@pytest.mark.parametrize(("path", "index", "mark", "code"), SCRIPTS, ids=[f"{p.name}[{i}]" for p, i, _, _ in SCRIPTS])
def test_python_blocks_run(path: Path, index: int, mark: str, code: str, tmp_path: Path) -> None:
    if mark.startswith("skip"):
        pytest.skip(f"{path.name} block {index}: {mark}")
    if mark == "needs cuda" and not torch.cuda.is_available():
        pytest.skip("needs a GPU")
    proc = _run(["-c", code], tmp_path)
    assert proc.returncode == 0, f"{path.name} python block {index}:\n{proc.stderr[-3000:]}"


def test_docs_have_examples() -> None:
    assert SCRIPTS and any(">>>" in p.read_text() for p in DOCS)
