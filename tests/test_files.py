"""Atomic writes: the temporary file never clobbers an existing one and never stays behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from sepconv import _files


def test_an_existing_file_at_the_temporary_name_is_neither_used_nor_removed(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_files.secrets, "token_hex", lambda n: "f" * 2 * n)
    squatter = tmp_path / f".out.{'f' * 16}.tmp.txt"
    squatter.write_text("not ours")
    with pytest.raises(FileExistsError):
        _files.atomic_write_text(tmp_path / "out.txt", "new")
    assert squatter.read_text() == "not ours" and not (tmp_path / "out.txt").exists()


def test_a_failed_or_interrupted_write_leaves_nothing(tmp_path: Path) -> None:
    def interrupted(tmp: Path) -> None:
        tmp.write_text("half")
        raise KeyboardInterrupt

    (tmp_path / "out.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        _files.atomic_write(tmp_path / "out.txt", interrupted)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"] and (tmp_path / "out.txt").read_text() == "old"
