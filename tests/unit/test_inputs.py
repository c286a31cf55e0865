"""Early, typed validation of input files and memory-store attachments (real files on disk)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from managed_agents_core.exceptions import ConfigurationError, InputFileError, MemoryStoreConfigError
from managed_agents_core.inputs import (
    DEFAULT_MOUNT_DIR,
    InputFile,
    MemoryStoreAttachment,
    UploadedFile,
    check_input_files,
    check_memory_attachments,
    file_sha256,
)


def test_plain_paths_and_models_are_accepted(tmp_path: Path) -> None:
    a = tmp_path / "a.csv"
    a.write_text("x,y\n")
    b = tmp_path / "b.txt"
    b.write_text("hello")
    checked = check_input_files([str(a), InputFile(path=str(b), mount_path="/workspace/data/b.txt")])
    assert [c.mount_path for c in checked] == [f"{DEFAULT_MOUNT_DIR}/a.csv", "/workspace/data/b.txt"]
    assert [c.path for c in checked] == [a.resolve(), b.resolve()]


def test_dict_items_are_coerced(tmp_path: Path) -> None:
    a = tmp_path / "a.csv"
    a.write_text("1")
    [checked] = check_input_files([{"path": str(a), "mount_path": "/data/a.csv"}])
    assert checked.mount_path == "/data/a.csv"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="does not exist"):
        check_input_files([str(tmp_path / "nope.txt")])


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="is a directory"):
        check_input_files([str(tmp_path)])


@pytest.mark.parametrize("mount", ["relative/a.txt", "a.txt", "/workspace/../etc/a", "/workspace/", "/a\0b"])
def test_bad_mount_paths(mount: str, tmp_path: Path) -> None:
    a = tmp_path / "a.txt"
    a.write_text("1")
    with pytest.raises(InputFileError, match="mount_path"):
        check_input_files([{"path": str(a), "mount_path": mount}])


def test_two_inputs_on_one_mount_path(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    (tmp_path / "x" / "data.csv").write_text("1")
    (tmp_path / "y" / "data.csv").write_text("2")
    with pytest.raises(InputFileError, match="both be mounted"):
        check_input_files([str(tmp_path / "x" / "data.csv"), str(tmp_path / "y" / "data.csv")])


def test_input_errors_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        check_input_files([str(tmp_path / "missing")])


def test_file_sha256_streams_and_matches_hashlib(tmp_path: Path) -> None:
    data = bytes(range(256)) * 10_000  # 2.5 MiB: several chunks
    f = tmp_path / "blob.bin"
    f.write_bytes(data)
    assert file_sha256(f) == (hashlib.sha256(data).hexdigest(), len(data))


def test_uploaded_file_resource_param() -> None:
    up = UploadedFile(
        file_id="file_1",
        filename="a.csv",
        sha256="0" * 64,
        size_bytes=1,
        mount_path="/data/a.csv",
        reused=False,
    )
    assert up.resource_param() == {"type": "file", "file_id": "file_1", "mount_path": "/data/a.csv"}


def test_memory_attachments_accept_ids_names_and_dicts() -> None:
    checked = check_memory_attachments(
        [
            "memstore_01abc",
            "team-notes",
            {"store": "other", "access": "read_only", "instructions": "Read me."},
        ]
    )
    assert [a.is_id for a in checked] == [True, False, False]
    assert checked[2].access == "read_only"
    assert checked[0].access == "read_write"


def test_more_than_eight_memory_stores() -> None:
    with pytest.raises(MemoryStoreConfigError, match="at most 8"):
        check_memory_attachments([f"store-{i}" for i in range(9)])
    assert len(check_memory_attachments([f"store-{i}" for i in range(8)])) == 8


def test_instructions_too_long() -> None:
    with pytest.raises(MemoryStoreConfigError, match="4096"):
        check_memory_attachments([{"store": "notes", "instructions": "x" * 4097}])
    assert check_memory_attachments([{"store": "notes", "instructions": "x" * 4096}])


def test_same_store_twice() -> None:
    with pytest.raises(MemoryStoreConfigError, match="more than once"):
        check_memory_attachments(["notes", MemoryStoreAttachment(store="notes", access="read_only")])


def test_create_if_missing_needs_a_name() -> None:
    with pytest.raises(MemoryStoreConfigError, match="needs a store name"):
        check_memory_attachments([{"store": "memstore_01abc", "create_if_missing": True}])


def test_bad_access_value() -> None:
    with pytest.raises(MemoryStoreConfigError):
        check_memory_attachments([{"store": "notes", "access": "write"}])


def test_parameter_schema_has_descriptions() -> None:
    for model in (InputFile, MemoryStoreAttachment, UploadedFile):
        for name, field in model.model_fields.items():
            assert field.description and field.description.endswith("."), (model.__name__, name)
