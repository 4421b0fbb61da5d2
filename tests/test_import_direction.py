"""Dependencies point one way: leaves -> functional -> backends -> layers -> tools -> applications -> cli.

Every ``import`` in ``src/sepconv`` (module level or inside functions) is resolved to a sepconv module and
checked against the tiers below: a module may import its own tier or lower ones, never a higher one. The
package ``__init__`` (public API with lazy attributes) is the only module above every tier.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "sepconv"

# tier -> module name prefixes (relative to sepconv); the longest matching prefix wins
TIERS: dict[int, tuple[str, ...]] = {
    0: ("errors", "_checks", "padding", "_files", "_lazy", "choices", "_rich_table"),
    1: ("functional", "factorize"),
    2: ("backends",),
    3: ("layers",),
    4: ("convert", "convert_program", "program_file", "fusion", "cost", "model_cost", "optimize", "prepacked",
        "global_pool", "lean_sequential", "calibrate", "plan", "models"),
    5: ("study", "filters", "interop"),
    6: ("cli", "__main__"),
}
NAMES = {"tiers": ["leaves", "functional", "backends", "layers", "tools", "applications", "cli"]}
PACKAGE_TIER = 5.5  # the public API (sepconv/__init__.py): only the CLI may import it (e.g. __version__)


def tier_of(module: str) -> float:
    """Tier of a dotted module name relative to ``sepconv`` (``''`` is the package itself: above every tier)."""
    if module == "":
        return PACKAGE_TIER
    best = (-1, None)
    for tier, prefixes in TIERS.items():
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best[0]:
                best = (len(prefix), tier)
    if best[1] is None:
        raise AssertionError(f"sepconv.{module} has no tier: add it to TIERS in {Path(__file__).name}")
    return best[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def exists(module: str) -> bool:
    base = PACKAGE.joinpath(*module.split(".")) if module else PACKAGE
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` for every sepconv module that ``path`` imports, relative to ``sepconv``."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "sepconv" or alias.name.startswith("sepconv."):
                    found.append((node.lineno, alias.name.removeprefix("sepconv").lstrip(".")))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join([*parts, *(node.module.split(".") if node.module else [])])
            elif node.module and (node.module == "sepconv" or node.module.startswith("sepconv.")):
                base = node.module.removeprefix("sepconv").lstrip(".")
            else:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}" if base else alias.name
                found.append((node.lineno, sub if exists(sub) else base))
    return found


SOURCES = sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_upward_import(path: Path) -> None:
    me = module_name(path)
    if me == "":
        return  # the public API may import every tier
    mine = tier_of(me)
    upward = [f"line {line}: {me} ({NAMES['tiers'][int(mine)]}) imports {target or 'sepconv'} "
              f"({'the package' if tier_of(target) == PACKAGE_TIER else NAMES['tiers'][int(tier_of(target))]})"
              for line, target in imported_modules(path) if tier_of(target) > mine]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    assert tier_of("layers.separable") > tier_of("backends.dispatch")
    assert tier_of("cli.convert") > tier_of("study.data") > tier_of("convert")


def test_import_sepconv_stays_light() -> None:
    """``import sepconv`` loads neither torch, numpy, matplotlib, onnx, keras, triton, the study nor the filters."""
    code = ("import sys, sepconv; heavy = ['torch', 'numpy', 'matplotlib', 'onnx', 'onnxruntime', 'keras', 'triton', "
            "'cv2', "
            "'sepconv.study', 'sepconv.filters', 'sepconv.interop', 'sklearn']; "
            "print([m for m in heavy if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_lazy_public_names_resolve() -> None:
    import sepconv

    assert callable(sepconv.filter2d) and callable(sepconv.get_kernel) and callable(sepconv.run_study)
    assert sepconv.StudyConfig is sepconv.study.StudyConfig
    assert {"filters", "study", "interop", "data"} <= set(dir(sepconv))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        sepconv.nope  # noqa: B018
