"""harness.atomic: the one way files are written (temp file beside the target, then rename)."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from harness.atomic import atomic_path, write_frame, write_text


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    p = write_text(tmp_path / "a" / "t.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(p) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert p.read_text() == "old"
    assert os.listdir(p.parent) == ["t.txt"]


def test_files_get_the_umask_mode_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        p = write_text(tmp_path / "m.txt", "x")
    finally:
        os.umask(old)
    assert os.stat(p).st_mode & 0o777 == 0o644          # 0o666 & ~0o022


def test_frames_by_suffix(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    pd.testing.assert_frame_equal(pd.read_csv(write_frame(df, tmp_path / "t.csv")), df)
    pd.testing.assert_frame_equal(pd.read_parquet(write_frame(df, tmp_path / "t.parquet")), df)
    with pytest.raises(ValueError, match="'.json' not in .csv, .parquet"):
        write_frame(df, tmp_path / "t.json")
