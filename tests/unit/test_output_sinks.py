"""Output destinations on real files: atomic commit, symlinks never followed, records, blocks."""

# ruff: noqa: ASYNC240  (tests check small real files with blocking calls on purpose)
from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from prefect.filesystems import LocalFileSystem, RemoteFileSystem

from blocks.filesystem_sink import FileSystemBlockSink, output_destination
from managed_agents_core.exceptions import (
    OutputError,
    OutputOverwriteError,
    PathOutsideRootsError,
    UnsafeOutputPathError,
)
from managed_agents_core.output_sinks import (
    RECORDS_DIR,
    TEMP_PREFIX,
    LocalDirectorySink,
    OutputRecord,
    current_umask,
    open_sink,
    partial_prefix,
    remove_orphaned_partials,
)


def _stage(sink_dir: Path, data: bytes) -> Path:
    staged = sink_dir / ".managed-agents-tmp-test.part"
    staged.write_bytes(data)
    return staged


def _record(name: str, data: bytes, file_id: str = "file_1") -> OutputRecord:
    return OutputRecord(
        file_id=file_id, name=name, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest()
    )


async def test_local_commit_is_a_rename_and_records_round_trip(tmp_path: Path) -> None:
    sink = LocalDirectorySink(tmp_path / "out" / "nested")
    staged = _stage(sink.staging_dir, b"hello")
    path = await sink.commit(staged, "a.txt")
    assert Path(path) == (tmp_path / "out" / "nested" / "a.txt").resolve()
    assert Path(path).read_bytes() == b"hello"
    assert not staged.exists()
    record = _record("a.txt", b"hello")
    assert await sink.read_record("file_1") is None
    await sink.write_record(record)
    assert await sink.read_record("file_1") == record
    assert await sink.holds_copy(record)
    Path(path).write_bytes(b"hellO")  # same size, other bytes
    assert not await sink.holds_copy(record)


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
async def test_an_output_gets_the_mode_the_umask_gives_new_files(
    tmp_path: Path, umask: int, mode: int
) -> None:
    sink = LocalDirectorySink(tmp_path / "out")
    staged = _stage(sink.staging_dir, b"shared")
    staged.chmod(0o600)  # as mkstemp makes it
    old = os.umask(umask)
    try:
        assert current_umask() == umask
        path = await sink.commit(staged, "report.md")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == mode


async def test_symlink_at_target_is_neither_followed_nor_replaced(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"precious")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "a.txt").symlink_to(outside)
    sink = LocalDirectorySink(dest)
    record = _record("a.txt", b"precious")
    assert not await sink.holds_copy(record)  # a symlink is never taken for a downloaded copy
    await sink.write_record(record)  # even with a record of that name: a link is not our file
    with pytest.raises(OutputOverwriteError, match="did not write"):
        await sink.commit(_stage(dest, b"new"), "a.txt")
    assert outside.read_bytes() == b"precious"
    assert (dest / "a.txt").is_symlink()


async def test_only_files_the_collector_wrote_are_replaced(tmp_path: Path) -> None:
    sink = LocalDirectorySink(tmp_path / "out")
    foreign = tmp_path / "out" / "authorized_keys"
    foreign.write_bytes(b"ssh-ed25519 AAAA someone")
    with pytest.raises(OutputOverwriteError, match="'authorized_keys'"):
        await sink.commit(_stage(sink.staging_dir, b"ssh-ed25519 BBBB attacker"), "authorized_keys")
    assert foreign.read_bytes() == b"ssh-ed25519 AAAA someone"
    # A file the collector wrote (a record of its name, same bytes) is replaced by a later turn's.
    await sink.commit(_stage(sink.staging_dir, b"v1"), "report.md")
    await sink.write_record(_record("report.md", b"v1", file_id="file_v1"))
    await sink.commit(_stage(sink.staging_dir, b"v2"), "report.md")
    assert (tmp_path / "out" / "report.md").read_bytes() == b"v2"
    await sink.write_record(_record("report.md", b"v2", file_id="file_v2"))
    # Edited since, it is still the collector's file (its record names it): collecting restores it.
    (tmp_path / "out" / "report.md").write_bytes(b"v2 edited by hand")
    await sink.commit(_stage(sink.staging_dir, b"v2"), "report.md")
    assert (tmp_path / "out" / "report.md").read_bytes() == b"v2"
    # Records are per folder: another folder's record does not make a file there ours.
    other = LocalDirectorySink(tmp_path / "other")
    (tmp_path / "other" / "report.md").write_bytes(b"someone's")
    with pytest.raises(OutputOverwriteError):
        await other.commit(_stage(other.staging_dir, b"v3"), "report.md")
    assert (tmp_path / "other" / "report.md").read_bytes() == b"someone's"


def test_open_sink_checks_the_output_roots(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (root / "link").symlink_to(tmp_path / "elsewhere")
    for bad in (tmp_path / "elsewhere", root / ".." / "elsewhere", root / "link" / "x", "~/.ssh"):
        with pytest.raises(PathOutsideRootsError, match=str(root)):
            open_sink(str(bad), roots=[root.resolve()])
    assert not (tmp_path / "elsewhere" / "x").exists()
    assert isinstance(open_sink(str(root / "in"), roots=[root.resolve()]), LocalDirectorySink)


async def test_destination_that_is_a_symlink_is_resolved(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    sink = LocalDirectorySink(tmp_path / "link")
    await sink.commit(_stage(sink.staging_dir, b"1"), "x.bin")
    assert (real / "x.bin").read_bytes() == b"1"


async def test_folder_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "a.txt").mkdir()
    sink = LocalDirectorySink(tmp_path)
    with pytest.raises(OutputError, match="is a folder"):
        await sink.commit(_stage(tmp_path, b"1"), "a.txt")


async def test_corrupt_record_is_ignored(tmp_path: Path) -> None:
    sink = LocalDirectorySink(tmp_path)
    (tmp_path / RECORDS_DIR).mkdir()
    (tmp_path / RECORDS_DIR / "file_1.json").write_text("{not json")
    assert await sink.read_record("file_1") is None


async def test_unsafe_names_and_ids_are_refused(tmp_path: Path) -> None:
    sink = LocalDirectorySink(tmp_path / "out")
    with pytest.raises(UnsafeOutputPathError):
        await sink.commit(_stage(sink.staging_dir, b"1"), "../escape.txt")
    with pytest.raises(UnsafeOutputPathError):
        await sink.read_record("../../file")
    assert not (tmp_path / "escape.txt").exists()


def test_open_sink_picks_the_destination_kind(tmp_path: Path) -> None:
    assert isinstance(open_sink(str(tmp_path)), LocalDirectorySink)
    local_block = open_sink(output_destination(LocalFileSystem(basepath=str(tmp_path / "lfs"))))
    assert isinstance(local_block, LocalDirectorySink)
    assert local_block.directory == (tmp_path / "lfs").resolve()
    assert isinstance(
        open_sink(output_destination(RemoteFileSystem(basepath="memory://outputs/rfs"))), FileSystemBlockSink
    )
    with pytest.raises(OutputError, match="WritableFileSystem"):
        open_sink(42)  # type: ignore[arg-type]


async def test_remote_filesystem_block_streams_and_verifies(tmp_path: Path) -> None:
    # fsspec's in-memory file system: a real RemoteFileSystem backend that needs no server.
    base = f"memory://outputs/{tmp_path.name}"
    block = RemoteFileSystem(basepath=base)
    sink = open_sink(output_destination(block))
    assert isinstance(sink, FileSystemBlockSink)
    fs = block.filesystem
    data = b"0123456789" * 300_000  # 3 MB: several chunks when verified
    path = await sink.commit(_stage(sink.staging_dir, data), "big.bin")
    assert path == f"{base}/big.bin"
    assert fs.cat_file(path) == data
    assert [p.rsplit("/", 1)[-1] for p in fs.ls(base, detail=False)] == ["big.bin"]
    record = _record("big.bin", data, file_id="file_big")
    await sink.write_record(record)
    assert await sink.read_record("file_big") == record
    assert await sink.holds_copy(record)
    fs.pipe_file(path, data[:-1] + b"X")
    assert not await sink.holds_copy(record)
    staging = sink.staging_dir
    await sink.aclose()
    assert not staging.exists()


def test_partials_of_dead_processes_are_removed_and_a_live_writers_are_kept(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(done.stdout)
    (tmp_path / RECORDS_DIR).mkdir()
    dead = [
        tmp_path / f"{TEMP_PREFIX}{dead_pid}-abc.part",
        tmp_path / RECORDS_DIR / f"{TEMP_PREFIX}{dead_pid}-x",
    ]
    kept = [
        tmp_path / f"{partial_prefix()}def.part",  # this (live) process is writing it
        tmp_path / f"{TEMP_PREFIX}legacy.part",  # no pid in the name: not ours to judge
        tmp_path / "report.md",
    ]
    for path in dead + kept:
        path.write_bytes(b"x")
    assert sorted(remove_orphaned_partials(tmp_path)) == sorted(dead)
    assert [p for p in dead + kept if p.exists()] == kept
    LocalDirectorySink(tmp_path)  # opening the folder also sweeps (nothing left to remove now)
    assert partial_prefix() == f"{TEMP_PREFIX}{os.getpid()}-"
