"""Path safety of server-supplied output names: nothing may ever land outside the destination."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from managed_agents_core.exceptions import UnsafeOutputPathError
from managed_agents_core.output_paths import (
    MAX_NAME_BYTES,
    ServerFile,
    contained_path,
    disambiguated_name,
    plan_output_names,
    safe_output_name,
)

FILE_ID = "file_01ABCdef"

# (server name, expected local name)
SAFETY_TABLE = [
    ("report.md", "report.md"),
    ("../x", "x"),
    ("/etc/passwd", "passwd"),
    ("a/../../b", "b"),
    ("..", f"unnamed-{FILE_ID}"),
    (".", f"unnamed-{FILE_ID}"),
    ("", f"unnamed-{FILE_ID}"),
    ("...", f"unnamed-{FILE_ID}"),
    ("dir/", f"unnamed-{FILE_ID}"),
    ("con\0x", "con_x"),
    ("sub\\..\\..\\x", "x"),
    ("C:\\Windows\\system32\\evil.dll", "evil.dll"),
    ("C:evil.txt", "C_evil.txt"),
    ("résumé.pdf", "résumé.pdf"),
    ("re\u0301sume\u0301.pdf", "résumé.pdf"),  # NFD input becomes NFC
    ("報告書.txt", "報告書.txt"),
    ("invoice\u202etxt.exe", "invoice_txt.exe"),  # right-to-left override cannot disguise the extension
    ("line\nbreak.txt", "line_break.txt"),
    ("para\u2029graph.txt", "para_graph.txt"),
    ('a<b>c:"d|e?f*.txt', "a_b_c__d_e_f_.txt"),
    ("  spaced.txt  ", "spaced.txt"),
    ("trailing.", "trailing"),
    ("CON", "_CON"),
    ("nul.txt", "_nul.txt"),
    ("com1.log", "_com1.log"),
    (".managed-agents-records", "_.managed-agents-records"),
    (".Managed-Agents-tmp-x.part", "_.Managed-Agents-tmp-x.part"),
    (".bashrc", ".bashrc"),
]


@pytest.mark.parametrize(("server_name", "expected"), SAFETY_TABLE)
def test_safety_table(server_name: str, expected: str, tmp_path: Path) -> None:
    name = safe_output_name(server_name, FILE_ID)
    assert name == expected
    target = contained_path(tmp_path, name)
    assert target.parent == tmp_path


@pytest.mark.parametrize("length", [256, 1000, 10_000])
def test_very_long_names_fit_and_keep_extension(length: int, tmp_path: Path) -> None:
    name = safe_output_name("a" * length + ".csv", FILE_ID)
    assert len(name.encode()) == MAX_NAME_BYTES
    assert name.endswith(".csv")
    contained_path(tmp_path, name).write_bytes(b"x")  # the OS accepts it
    assert (tmp_path / name).read_bytes() == b"x"


def test_long_multibyte_names_are_cut_on_a_character_boundary(tmp_path: Path) -> None:
    name = safe_output_name("é" * 300 + ".txt", FILE_ID)
    assert len(name.encode()) <= MAX_NAME_BYTES
    assert name.endswith(".txt")
    assert set(name.removesuffix(".txt")) == {"é"}
    assert unicodedata.is_normalized("NFC", name)
    contained_path(tmp_path, name).write_bytes(b"x")


def test_long_name_with_directory_traversal(tmp_path: Path) -> None:
    name = safe_output_name("../" * 200 + "b" * 400, FILE_ID)
    assert name == "b" * MAX_NAME_BYTES
    assert contained_path(tmp_path, name).parent == tmp_path


def test_unsafe_file_ids_are_rejected() -> None:
    with pytest.raises(UnsafeOutputPathError):
        safe_output_name("x.txt", "../file")
    with pytest.raises(UnsafeOutputPathError):
        safe_output_name("x.txt", "")


@pytest.mark.parametrize("bad", ["", ".", "..", "../x", "a/b", "a\\b", "x\0y", "/etc/passwd"])
def test_contained_path_refuses_anything_but_a_plain_name(bad: str, tmp_path: Path) -> None:
    with pytest.raises(UnsafeOutputPathError):
        contained_path(tmp_path, bad)


def test_duplicate_names_are_disambiguated_deterministically() -> None:
    files = [
        ServerFile("file_c", "report.md", "2026-01-01T00:00:03Z"),
        ServerFile("file_a", "report.md", "2026-01-01T00:00:01Z"),
        ServerFile("file_b", "../report.md", "2026-01-01T00:00:02Z"),
        ServerFile("file_d", "REPORT.md", "2026-01-01T00:00:04Z"),
        ServerFile("file_e", "other.md", "2026-01-01T00:00:05Z"),
    ]
    planned = plan_output_names(files)
    assert planned == {
        "file_a": "report.md",
        "file_b": "report-file_b.md",
        "file_c": "report-file_c.md",
        "file_d": "REPORT-file_d.md",
        "file_e": "other.md",
    }
    assert plan_output_names(reversed(files)) == planned
    assert len({n.casefold() for n in planned.values()}) == len(files)


def test_disambiguation_survives_a_name_that_already_has_the_suffix() -> None:
    files = [
        ServerFile("file_a", "x.txt", "1"),
        ServerFile("file_z", "x-file_b.txt", "2"),
        ServerFile("file_b", "x.txt", "3"),
    ]
    planned = plan_output_names(files)
    assert planned["file_a"] == "x.txt"
    assert planned["file_z"] == "x-file_b.txt"
    assert planned["file_b"] == "x-file_b-2.txt"


def test_disambiguated_long_names_still_fit() -> None:
    base = safe_output_name("z" * 400 + ".json", FILE_ID)
    tagged = disambiguated_name(base, "file_" + "9" * 40)
    assert len(tagged.encode()) <= MAX_NAME_BYTES
    assert tagged.endswith("-file_" + "9" * 40 + ".json")
