"""The code stays readable: no function in src/ over 60 lines (issue 10)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "sepconv"
LIMIT = 60


def long_functions() -> list[str]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > LIMIT:
                    found.append(f"{path.relative_to(SRC).as_posix()}:{node.lineno} {node.name} is {length} lines")
    return found


def test_no_function_over_60_lines() -> None:
    assert not long_functions(), "split these into named phases:\n" + "\n".join(long_functions())
