"""`harness data fetch|status` (issue 19): the manifest's files downloaded with a sha256 check,
tested against a `file://` mirror of `../shared` (the same layout as paths.shared)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import requires_shared

from harness.cli.main import main
from harness.data.fetch import fetch
from harness.data.manifest import load_manifest, select, sha256_of, state
from harness.errors import UserError

READ_BY_THE_HARNESS = ("profiles/vidur/compute/*/*/*/mlp.csv", "profiles/vidur/network/*/*.csv",
                       "traces/*.csv", "reference/ft-published-calibration.csv", "reference/engines/*.json")


def _files():
    return [f for d in load_manifest() for f in d.files]


def _mirror_of(shared: Path, dst: Path) -> Path:
    """A copy of the manifest's files laid out as paths.shared (a mirror we may break)."""
    for f in _files():
        (dst / f.rel_path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared / f.rel_path, dst / f.rel_path)
    return dst


def test_the_manifest_lists_every_data_file_the_harness_reads_with_its_sha256() -> None:
    shared = requires_shared("profiles/vidur", "traces", "reference/ft-published-calibration.csv")
    on_disk = {p.relative_to(shared).as_posix() for g in READ_BY_THE_HARNESS for p in shared.glob(g)}
    assert {f.rel_path for f in _files()} == on_disk
    # the traces' sha256 as their PROVENANCE.md gives them (an independent record)
    provenance = (shared / "traces" / "PROVENANCE.md").read_text()
    for f in (f for f in _files() if f.dataset == "traces"):
        assert f.sha256 in provenance
    # every URL pinned to a commit, and to the repository PROVENANCE.md names
    for d in load_manifest():
        assert d.revision and all(f.url is None or d.revision in f.url for f in d.files)
    assert "7d47513363ec447a741ac5e47241580b47724fbf" in (shared / "profiles/vidur/PROVENANCE.md").read_text()


def test_fetch_from_a_file_mirror_reproduces_shared_byte_for_byte(tmp_path, capsys) -> None:
    shared = requires_shared("profiles/vidur", "traces", "reference")
    dest = tmp_path / "data"
    assert main(["data", "fetch", f"--mirror={shared.as_uri()}", f"paths.shared={dest}"]) == 0
    out = capsys.readouterr().out
    assert f"{len(_files())} downloaded, 0 already present" in out
    for f in _files():
        assert (dest / f.rel_path).read_bytes() == (shared / f.rel_path).read_bytes(), f.rel_path
    assert not list(dest.rglob("*.part"))
    assert main(["data", "status", f"paths.shared={dest}"]) == 0
    assert "missing" not in capsys.readouterr().out
    assert main(["data", "fetch", "traces", "--mirror", shared.as_uri(), f"paths.shared={dest}"]) == 0
    assert "0 downloaded, 3 already present" in capsys.readouterr().out


def test_a_corrupt_download_is_reported_with_the_file_and_removed(tmp_path) -> None:
    shared = requires_shared("traces")
    mirror = _mirror_of(shared, tmp_path / "mirror")
    bad = next(f for f in _files() if f.dataset == "traces")
    (mirror / bad.rel_path).write_bytes((mirror / bad.rel_path).read_bytes()[:1000])     # partial
    dest = tmp_path / "data"
    with pytest.raises(UserError, match=rf"^data fetch: {bad.rel_path}: corrupt download from "
                                        rf"{mirror.as_uri()}/{bad.rel_path} \(1000 bytes.*removed$"):
        fetch(select(["traces"]), dest, mirror.as_uri())
    assert not (dest / bad.rel_path).exists() and not list(dest.rglob("*.part"))


def test_a_corrupt_local_copy_is_seen_by_status_and_replaced_by_fetch(tmp_path, capsys) -> None:
    shared = requires_shared("traces")
    dest = tmp_path / "data"
    fetch(select(["traces"]), dest, shared.as_uri())
    f = next(f for f in _files() if f.dataset == "traces")
    (dest / f.rel_path).write_text("num_prefill_tokens,num_decode_tokens\n1,1\n")
    assert state(dest, f) == "corrupt"
    main(["data", "status", "traces", f"paths.shared={dest}"])
    assert f"corrupt  {f.rel_path}" in capsys.readouterr().out
    rep = fetch(select(["traces"]), dest, shared.as_uri())
    assert rep.fetched == (f.rel_path,) and sha256_of(dest / f.rel_path) == f.sha256


def test_offline_one_line_names_the_file_the_url_and_how_to_place_it(tmp_path, capsys) -> None:
    dead = (tmp_path / "no-such-mirror").as_uri()
    assert main(["data", "fetch", "traces", "--mirror", dead, f"paths.shared={tmp_path / 'd'}"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("harness:")]
    first, err = select(["traces"])[0].files[0], errors[-1]
    assert len(errors) == 1 and err.startswith(f"harness: error: data fetch: {first.rel_path}: "
                                                         f"cannot download {dead}/{first.rel_path}")
    assert f"place the file at {tmp_path / 'd' / first.rel_path} by hand (sha256 {first.sha256})" in err


def test_a_file_with_no_public_copy_is_listed_for_placing_by_hand(tmp_path) -> None:
    rep = fetch(select(["ft-reference"]), tmp_path, mirror=None)
    assert rep.manual == ("reference/ft-published-calibration.csv",) and rep.fetched == ()
    assert "FasterTransformer" in select(["ft-reference"])[0].manual


def test_bad_input_is_one_line(capsys) -> None:
    assert main(["data", "fetch", "vidur"]) == 2
    assert capsys.readouterr().err.startswith("harness: error: dataset: unknown 'vidur'; valid: engine-fits, "
                                               "ft-reference, traces, vidur-profiles")
    assert main(["data", "get"]) == 2
    assert "data: action must be one of status, fetch, got get" in capsys.readouterr().err


def test_missing_data_says_how_to_get_it(tmp_path, capsys) -> None:
    assert main(["calibrate", f"paths.shared={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert f"paths.profiles: {tmp_path}/profiles/vidur does not exist; get it with `harness data fetch " \
           "vidur-profiles`" in err


def test_reproduce_without_data_runs_the_other_steps_and_says_how_to_get_it(tmp_path, monkeypatch,
                                                                           capsys) -> None:
    """The real calibrate and traces commands against an empty paths.shared; every other step
    of the full reproduction is a stub that records it ran."""
    from harness.cli import reproduce as rep
    from harness.cli.main import COMMANDS
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HARNESS_SHARED_DIR", str(tmp_path / "empty"))
    ran = []
    commands = {name: (lambda argv, name=name: ran.append(name)) for name in COMMANDS}
    commands.update(calibrate=COMMANDS["calibrate"], traces=COMMANDS["traces"])
    rep.reproduce([], commands)
    err = capsys.readouterr().err
    needs_data = {"calibration", "fig10"}
    assert len(ran) == len(rep.FULL) - len(needs_data)
    assert "reproduce: 2 step(s) skipped for want of data" in err
    assert "calibration: paths.profiles: " in err and "`harness data fetch vidur-profiles`" in err
    assert "fig10: paths.traces: " in err and "`harness data fetch traces`" in err
