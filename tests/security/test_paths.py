"""Input and output roots: a parameter never makes the worker read or write outside them
(docs/security.md).

Before: ``files`` uploaded any path the worker could read (``~/.aws/credentials``,
``/etc/passwd``) and ``output_dir`` could name any folder it could write (``~/.ssh``), replacing
files there. Now every path a parameter names must resolve, after symlinks, inside the input or
output roots (narrowed here to ``<tmp>/in`` and ``<tmp>/out``): anything else is a typed error that
names the root, before anything is uploaded, created or written; and an output never replaces a
file the collector did not write.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from emulator import EmulatorServer
from managed_agents_core.exceptions import OutputOverwriteError, PathOutsideRootsError
from tests.integration.session_helpers import RemoteAgent, scenario

from .conftest import Roots
from .helpers import PARAMETER_KEY, automation_parameters, files_under, run_as_deployment, state_error

pytestmark = pytest.mark.usefixtures("prefect_harness")

HOME_MARKER = ".managed-agents-security-test"
"""A name no test may ever create in the real home folder."""


def _inputs(roots: Roots) -> dict[str, Callable[[], str]]:
    """Input paths that escape the input root, each made real on disk first."""

    def symlinked_file() -> str:
        link = roots.inputs / "innocent.csv"
        link.symlink_to(roots.outside / "credentials")
        return str(link)

    def symlinked_folder() -> str:
        (roots.inputs / "shared").symlink_to(roots.outside)
        return str(roots.inputs / "shared" / "credentials")

    return {
        "dotdot": lambda: str(roots.inputs / ".." / "outside" / "credentials"),
        "relative-dotdot": lambda: os.path.relpath(roots.outside / "credentials"),
        "symlinked-file": symlinked_file,
        "symlinked-folder": symlinked_folder,
        "absolute": lambda: "/etc/passwd",
        "tilde": lambda: "~/.aws/credentials",
    }


def _outputs(roots: Roots) -> dict[str, Callable[[], str]]:
    """Output folders that escape the output root."""

    def symlinked_folder() -> str:
        (roots.outputs / "reports").symlink_to(roots.outside)
        return str(roots.outputs / "reports")

    return {
        "dotdot": lambda: str(roots.outputs / ".." / "outside" / "keys"),
        "symlinked-folder": symlinked_folder,
        "absolute": lambda: str(roots.outside / "keys"),
        "tilde-ssh": lambda: f"~/{HOME_MARKER}/.ssh",
    }


def _assert_refused(
    error: BaseException | None,
    root: Path,
    emulator: EmulatorServer,
    roots: Roots,
    planted: tuple[str, ...] = ("credentials",),
) -> None:
    """The typed error names the root; nothing was sent, and nothing written anywhere.

    Args:
        planted: The files the test itself put outside the roots.
    """
    assert isinstance(error, PathOutsideRootsError), repr(error)
    assert str(root) in str(error), "the error must name the root"
    assert PARAMETER_KEY not in str(error), "the error echoed the file's content"
    assert emulator.control.requests() == [], "something was uploaded, created or sent"
    written = [f for f in roots.outputs.rglob("*") if f.is_file() and not f.is_symlink()]
    assert written == [], f"files were written: {written}"
    assert files_under(roots.outside) == sorted(planted), "something was written outside the roots"
    assert not (Path.home() / HOME_MARKER).exists(), "a folder was created in the worker's home"


def _raised(run: Callable[[], Any]) -> BaseException | None:
    try:
        result = run()
    except Exception as exc:
        return exc
    return state_error(result) if hasattr(result, "is_failed") else None


@pytest.mark.parametrize(
    "escape", ["dotdot", "relative-dotdot", "symlinked-file", "symlinked-folder", "absolute", "tilde"]
)
def test_input_files_outside_the_input_root_are_refused(
    escape: str, saved_agent: str, roots: Roots, emulator: EmulatorServer
) -> None:
    from flows.session import run_agent_session

    path = _inputs(roots)[escape]()
    error = _raised(
        lambda: run_agent_session(
            agent=saved_agent,
            prompt="hi",
            files=[str(roots.inputs / "ok.csv"), path],  # the good file is not uploaded either
            output_dir=str(roots.outputs),
        )
    )
    _assert_refused(error, roots.inputs, emulator, roots)


@pytest.mark.parametrize("escape", ["dotdot", "symlinked-folder", "absolute", "tilde-ssh"])
def test_output_dirs_outside_the_output_root_are_refused(
    escape: str, saved_agent: str, roots: Roots, emulator: EmulatorServer
) -> None:
    """``output_dir="~/.ssh"`` plus a prompt that writes ``authorized_keys``, and its variants."""
    from flows.session import run_agent_session

    output_dir = _outputs(roots)[escape]()
    prompt = scenario(outputs=[{"name": "authorized_keys", "size": 64}])
    error = _raised(lambda: run_agent_session(agent=saved_agent, prompt=prompt, output_dir=output_dir))
    _assert_refused(error, roots.outputs, emulator, roots)


@pytest.mark.parametrize("field", ["files", "output_dir"])
def test_automation_templated_paths_are_refused(
    field: str, saved_agent: str, roots: Roots, emulator: EmulatorServer
) -> None:
    """An Automation fills ``files`` / ``output_dir`` from an event's payload (``~/.aws/credentials``,
    ``~/.ssh``) for a deployment run: refused like any other parameter."""
    from flows.session import run_agent_session

    templates: dict[str, Any] = {"agent": saved_agent, "prompt": "hi", "output_dir": str(roots.outputs)}
    if field == "files":
        templates["files"] = "{{ event.payload.attachments }}"
        payload: dict[str, Any] = {"attachments": ["~/.aws/credentials", "/etc/passwd"]}
    else:
        templates["output_dir"] = "{{ event.payload.folder }}"
        payload = {"folder": f"~/{HOME_MARKER}/.ssh"}
    state = run_as_deployment(run_agent_session, automation_parameters(templates, payload))
    root = roots.inputs if field == "files" else roots.outputs
    _assert_refused(state_error(state), root, emulator, roots)


def _items_file(roots: Roots, *, outside: bool, entry: str) -> str:
    folder = roots.outside if outside else roots.inputs
    path = folder / "items.jsonl"
    path.write_text(json.dumps({"key": "one", "prompt": "x", "files": [entry]}) + "\n")
    return str(path)


@pytest.mark.parametrize(
    "case",
    ["items-file-outside", "items-file-tilde", "item-file-dotdot", "item-file-absolute", "listed-item-tilde"],
)
def test_batch_items_outside_the_input_root_start_no_session(
    case: str, saved_agent: str, roots: Roots, emulator: EmulatorServer
) -> None:
    """The batch file and every item's files are checked before any item starts (a good item
    first in the list does not start either)."""
    from flows.batch import run_agent_batch

    good = {"key": "good", "prompt": scenario(reply="ok"), "files": [str(roots.inputs / "ok.csv")]}
    items: Any = {
        "items-file-outside": lambda: _items_file(roots, outside=True, entry="ok.csv"),
        "items-file-tilde": lambda: "~/items.jsonl",
        "item-file-dotdot": lambda: _items_file(roots, outside=False, entry="../outside/credentials"),
        "item-file-absolute": lambda: _items_file(roots, outside=False, entry="/etc/passwd"),
        "listed-item-tilde": lambda: [good, {"key": "bad", "prompt": "x", "files": ["~/.aws/credentials"]}],
    }[case]()
    error = _raised(
        lambda: run_as_deployment(
            run_agent_batch, {"agent": saved_agent, "items": items, "output_dir": str(roots.outputs)}
        )
    )
    planted = ("credentials", "items.jsonl") if case == "items-file-outside" else ("credentials",)
    _assert_refused(error, roots.inputs, emulator, roots, planted)


def test_batch_and_follow_up_output_dirs_outside_the_root_are_refused(
    saved_agent: str, roots: Roots, emulator: EmulatorServer
) -> None:
    from flows.batch import run_agent_batch
    from flows.follow_up import continue_agent_session

    outside = str(roots.outside / "batch")
    error = _raised(
        lambda: run_as_deployment(
            run_agent_batch, {"agent": saved_agent, "items": ["x"], "output_dir": outside}
        )
    )
    _assert_refused(error, roots.outputs, emulator, roots)
    error = _raised(
        lambda: continue_agent_session(
            agent=saved_agent, session_id="sesn_x", prompt="x", output_dir="~/.ssh"
        )
    )
    _assert_refused(error, roots.outputs, emulator, roots)


@pytest.mark.parametrize("escape", ["outside", "tilde", "symlink"])
def test_spec_files_outside_the_input_root_are_not_read(
    escape: str, roots: Roots, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``deploy_agent``'s spec path: read only inside the input root (a YAML error would echo
    the file's content, so the file is not even opened)."""
    from flows.setup import deploy_agent
    from tests.conftest import TEST_API_KEY

    monkeypatch.setenv("ANTHROPIC_API_KEY", TEST_API_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", emulator.url)
    if escape == "symlink":
        (roots.inputs / "agent.yaml").symlink_to(roots.outside / "credentials")
        path = str(roots.inputs / "agent.yaml")
    else:
        path = str(roots.outside / "credentials") if escape == "outside" else "~/.aws/credentials"
    error = _raised(lambda: run_as_deployment(deploy_agent, {"spec": path, "block_name": "security-spec"}))
    _assert_refused(error, roots.inputs, emulator, roots)


def test_an_output_never_replaces_a_file_the_collector_did_not_write(
    saved_agent: str, roots: Roots, emulator: EmulatorServer
) -> None:
    """Inside the output root, a session writes ``authorized_keys`` where a file of someone else's
    already is: typed error, the file is unchanged (byte for byte), no partial file is left."""
    from flows.session import run_agent_session

    folder = roots.outputs / "keys"
    folder.mkdir()
    existing = folder / "authorized_keys"
    existing.write_text("ssh-ed25519 AAAA the-owner\n")
    prompt = scenario(outputs=[{"name": "authorized_keys", "size": 80}])
    with pytest.raises(OutputOverwriteError, match="did not write"):
        run_agent_session(agent=saved_agent, prompt=prompt, output_dir=str(folder))
    assert existing.read_text() == "ssh-ed25519 AAAA the-owner\n"
    assert sorted(p.name for p in folder.iterdir()) == ["authorized_keys"]


def test_a_later_run_replaces_what_an_earlier_run_wrote(
    saved_agent: str, roots: Roots, emulator: EmulatorServer
) -> None:
    """Positive control: the collector's own file (recorded, unchanged) is replaced by a later
    session's file of the same name."""
    from flows.session import run_agent_session

    first = run_agent_session(
        agent=saved_agent,
        prompt=scenario(outputs=[{"name": "r.txt", "size": 40, "seed": 1}]),
        output_dir=str(roots.outputs),
    )
    second = run_agent_session(
        agent=saved_agent,
        prompt=scenario(outputs=[{"name": "r.txt", "size": 40, "seed": 2}]),
        output_dir=str(roots.outputs),
    )
    assert first.output_files[0].sha256 != second.output_files[0].sha256
    assert Path(second.output_files[0].path).read_bytes() != b""


def test_block_roots_replace_the_environments_and_parameters_cannot_change_them(
    remote_agent: RemoteAgent, emulator: EmulatorServer, roots: Roots, tmp_path: Path, prefect_harness: None
) -> None:
    """A saved block's ``input_roots`` / ``output_roots`` (set by whoever edits blocks) replace the
    environment's for that block: its runs may write to its own root, and no longer to the
    environment's."""
    from blocks.agent import ManagedAgent
    from blocks.credentials import AnthropicCredentials
    from flows.session import run_agent_session
    from tests.conftest import TEST_API_KEY

    block_out = tmp_path / "block-out"
    ManagedAgent(
        credentials=AnthropicCredentials(api_key=TEST_API_KEY, base_url=emulator.url),
        agent_id=remote_agent.agent_id,
        version=remote_agent.version,
        environment_id=remote_agent.environment_id,
        agent_name="security",
        input_roots=[str(roots.inputs)],
        output_roots=[str(block_out)],
    ).save("security-block-roots", overwrite=True, _sync=True)  # type: ignore[call-arg]
    prompt = scenario(outputs=[{"name": "a.txt", "size": 10}])
    result = run_agent_session(agent="security-block-roots", prompt=prompt, output_dir=str(block_out / "run"))
    assert [Path(o.path).name for o in result.output_files] == ["a.txt"]
    emulator.control.clear_requests()
    with pytest.raises(PathOutsideRootsError, match=str(block_out)):
        run_agent_session(agent="security-block-roots", prompt=prompt, output_dir=str(roots.outputs))
    assert emulator.control.requests() == []


def test_a_spec_file_inside_the_root_is_read(
    roots: Roots, emulator: EmulatorServer, prefect_harness: None
) -> None:
    """Positive control for spec paths: a relative path inside the input root works."""
    from blocks.credentials import AnthropicCredentials
    from flows.setup import deploy_agent
    from tests.conftest import TEST_API_KEY

    spec = {"name": "security-in-root", "model": "claude-opus-4-8", "environment": {"name": "security-env"}}
    (roots.inputs / "agent.yaml").write_text(yaml.safe_dump(spec))
    block = deploy_agent(
        os.path.relpath(roots.inputs / "agent.yaml"),
        "security-in-root",
        credentials=AnthropicCredentials(api_key=TEST_API_KEY, base_url=emulator.url),
    )
    assert block.agent_name == "security-in-root"
