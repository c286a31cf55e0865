"""Bad inputs: each must end in a clear, typed error and leave nothing behind.

"Typed" means a :class:`managed_agents_core.exceptions.ManagedAgentsError` subclass (or, for a flow
parameter of the wrong type, Prefect's own ``ParameterTypeError`` / pydantic's
``ValidationError`` raised before the flow runs). "Nothing behind" means no write request
reached the API (no upload, no session, no agent) and no file appeared in the output folder,
except where the case is about what the server sends back after the work was done.

The ``security-*`` cases are the attacks of docs/security.md (tests/security has them with more
variants): a parameter that would send the worker's key elsewhere, make it import code, or read
and write outside its roots (narrowed to ``<tmp>/in`` and ``<tmp>/out`` for those cases).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import pydantic
import pytest
import yaml
from prefect.exceptions import ParameterTypeError

from emulator import EmulatorServer
from managed_agents_core.exceptions import (
    ConfigurationError,
    CredentialsDestinationError,
    InlineBlockError,
    InputFileError,
    ManagedAgentsError,
    OutputIntegrityError,
    OutputOverwriteError,
    PathOutsideRootsError,
    SpecValidationError,
    UnknownCustomToolError,
)
from managed_agents_core.turn import TurnRequest
from tests.conftest import TEST_API_KEY
from tests.integration.session_helpers import scenario
from tests.security.helpers import automation_parameters, inline_agent, run_as_deployment, state_error

from .campaign import MODE, record
from .conftest import leftovers
from .fake_api import IDLE, SESSION_ID, BrokenApi, event_json, frame

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("prefect_harness")]

STREAM_BOUND_SECONDS = 15
"""A broken stream must end in an error within this; a TimeoutError here means it hung."""

GOOD_SPEC: dict[str, Any] = {
    "name": "campaign-agent",
    "model": "claude-opus-4-8",
    "system": "You check inputs.",
    "environment": {
        "name": "campaign-env",
        "config": {"type": "cloud", "networking": {"type": "unrestricted"}},
    },
}


@dataclass
class Case:
    """One bad input: what to run, which error types count as clear, and whether it may write."""

    run: Callable[[CaseContext], Any]
    expected: tuple[type[BaseException], ...]
    writes_allowed: bool = False


@dataclass
class CaseContext:
    """What a case can use."""

    emulator: EmulatorServer
    block: str
    tmp: Path
    out: Path
    monkeypatch: pytest.MonkeyPatch

    def file(self, name: str = "input.csv", content: bytes = b"a,b\n1,2\n") -> str:
        """Write a small valid input file and return its path."""
        path = self.tmp / name
        path.write_bytes(content)
        return str(path)

    def narrow_roots(self) -> Path:
        """Input root ``<tmp>/in`` (holding ``ok.csv``), output root ``<tmp>/out``; a secret
        outside both at ``<tmp>/secret/credentials``. Returns the input root."""
        inputs = self.tmp / "in"
        for folder in (inputs, self.tmp / "secret"):
            folder.mkdir(exist_ok=True)
        (inputs / "ok.csv").write_text("a,b\n1,2\n")
        (self.tmp / "secret" / "credentials").write_text("aws_secret_access_key = not-for-agents\n")
        self.monkeypatch.setenv("MANAGED_AGENTS_INPUT_ROOTS", str(inputs))
        self.monkeypatch.setenv("MANAGED_AGENTS_OUTPUT_ROOTS", str(self.out))
        return inputs

    def worker_key(self) -> None:
        """Put a key in the worker's environment (the attack's prize)."""
        self.monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-worker-campaign-SECRET")


def _write(ctx: CaseContext, name: str, text: str) -> Path:
    path = ctx.tmp / name
    path.write_text(text)
    return path


def _session(ctx: CaseContext, **kwargs: Any) -> Any:
    from flows.session import run_agent_session

    options = {"agent": ctx.block, "prompt": scenario(reply="ok"), "output_dir": str(ctx.out), **kwargs}
    return run_agent_session(**options)


def _deploy_yaml(ctx: CaseContext, text: str) -> Any:
    return _deploy_path(ctx, _write(ctx, "spec.yaml", text))


def _deploy_path(ctx: CaseContext, path: Path, block_name: str = "campaign-agent") -> Any:
    from blocks.credentials import AnthropicCredentials
    from flows.setup import deploy_agent

    creds = AnthropicCredentials(api_key=TEST_API_KEY, base_url=ctx.emulator.url)
    return deploy_agent(path, block_name, credentials=creds)


def _spec(**changes: Any) -> str:
    spec = {**GOOD_SPEC, **changes}
    return yaml.safe_dump({k: v for k, v in spec.items() if v is not None})


def _batch(ctx: CaseContext, items: Any, **options: Any) -> Any:
    from flows.batch import run_agent_batch

    return run_agent_batch(agent=ctx.block, items=items, output_dir=str(ctx.out), **options)


def _broken_stream(frames: bytes, history: list[dict[str, Any]]) -> Callable[[CaseContext], Any]:
    """Drive a session on a broken server; the turn must end in a typed error (bounded time)."""

    def run(ctx: CaseContext) -> Any:
        from managed_agents_core.events import user_message
        from managed_agents_core.lifecycle import adrive_session

        async def main() -> Any:
            with BrokenApi(frames, history) as api:
                async with anthropic.AsyncAnthropic(api_key="k", base_url=api.url, max_retries=0) as client:
                    async with asyncio.timeout(STREAM_BOUND_SECONDS):
                        report = await adrive_session(
                            client, SESSION_ID, TurnRequest(kickoff=[user_message("go")]), console_url="-"
                        )
            report.outcome.raise_for_failure()
            return report

        return asyncio.run(main())

    return run


def _processed_kickoff() -> list[dict[str, Any]]:
    return [
        {
            "type": "user.message",
            "id": "sevt_sent0",
            "processed_at": "2026-01-01T00:00:00Z",
            "content": [{"type": "text", "text": "go"}],
        },
        {"type": "session.status_running", "id": "sevt_run", "processed_at": "2026-01-01T00:00:00Z"},
    ]


def _deployment_run(flow_name: str, parameters: dict[str, Any]) -> Any:
    """Run the flow as a deployment run with these parameters; raise the error its state holds."""
    from flows.session import run_agent_session
    from flows.setup import deploy_agent

    flow: Any = {"run_agent_session": run_agent_session, "deploy_agent": deploy_agent}[flow_name]
    state = run_as_deployment(flow, parameters)
    if state.is_failed():
        raise state_error(state)
    return state


def _narrowed(run: Callable[[CaseContext, Path], Any]) -> Callable[[CaseContext], Any]:
    """A case that runs with the roots narrowed (see :meth:`CaseContext.narrow_roots`)."""
    return lambda ctx: run(ctx, ctx.narrow_roots())


def _inline_agent_session(ctx: CaseContext) -> Any:
    from blocks.agent import ManagedAgent

    ctx.worker_key()
    return _session(ctx, agent=ManagedAgent(**inline_agent("http://127.0.0.1:9")))


def _symlinked_input(ctx: CaseContext, inputs: Path) -> Any:
    (inputs / "innocent.csv").symlink_to(ctx.tmp / "secret" / "credentials")
    return _session(ctx, files=[str(inputs / "ok.csv"), str(inputs / "innocent.csv")])


def _symlinked_output(ctx: CaseContext, inputs: Path) -> Any:
    ctx.out.mkdir(exist_ok=True)
    (ctx.out / "reports").symlink_to(ctx.tmp / "secret")
    return _session(ctx, output_dir=str(ctx.out / "reports"))


def _items_outside(ctx: CaseContext, inputs: Path) -> Any:
    """A batch file inside the root whose second item names a file outside it (relative to the file)."""
    items = inputs / "items.jsonl"
    lines = [{"prompt": "x", "files": ["ok.csv"]}, {"prompt": "y", "files": ["../secret/credentials"]}]
    items.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return _batch(ctx, str(items))


def _overwrite(ctx: CaseContext, inputs: Path) -> Any:
    """A session writes ``authorized_keys`` where someone else's file is: it must stay as it was."""
    ctx.out.mkdir(exist_ok=True)
    existing = ctx.out / "authorized_keys"
    existing.write_text("ssh-ed25519 AAAA owner\n")
    try:
        return _session(ctx, prompt=scenario(outputs=[{"name": "authorized_keys", "size": 64}]))
    finally:
        assert existing.read_text() == "ssh-ed25519 AAAA owner\n", "a foreign file was replaced"


def _outputs(ctx: CaseContext, *outputs: dict[str, Any], **faults: Any) -> Any:
    if faults:
        ctx.emulator.control.set_faults(**faults)
    try:
        return _session(ctx, prompt=scenario(outputs=list(outputs)))
    finally:
        ctx.emulator.control.set_faults()


CASES: dict[str, Case] = {
    # --- credentials ----------------------------------------------------------------------
    "credentials-no-key": Case(lambda c: _with_credentials(c, api_key=None), (ManagedAgentsError,)),
    # --- specs (deploy_agent) -------------------------------------------------------------
    "spec-missing-model": Case(lambda c: _deploy_yaml(c, _spec(model=None)), (SpecValidationError,)),
    "spec-empty-name": Case(lambda c: _deploy_yaml(c, _spec(name="")), (SpecValidationError,)),
    "spec-unknown-key": Case(lambda c: _deploy_yaml(c, _spec(colour="blue")), (SpecValidationError,)),
    "spec-unknown-tool-type": Case(
        lambda c: _deploy_yaml(c, _spec(tools=[{"type": "laser_toolset"}])), (SpecValidationError,)
    ),
    "spec-bad-permission": Case(
        lambda c: _deploy_yaml(
            c,
            _spec(
                tools=[
                    {
                        "type": "agent_toolset_20260401",
                        "default_config": {"permission_policy": {"type": "maybe"}},
                    }
                ]
            ),
        ),
        (SpecValidationError,),
    ),
    "spec-bad-networking": Case(
        lambda c: _deploy_yaml(
            c, _spec(environment={"name": "e", "config": {"type": "cloud", "networking": {"type": "open"}}})
        ),
        (SpecValidationError,),
    ),
    "spec-not-a-mapping": Case(lambda c: _deploy_yaml(c, "- just\n- a list\n"), (SpecValidationError,)),
    "spec-not-yaml": Case(lambda c: _deploy_yaml(c, "name: [unclosed\n"), (SpecValidationError,)),
    "spec-missing-file": Case(lambda c: _deploy_path(c, c.tmp / "nope.yaml"), (SpecValidationError,)),
    "spec-bad-block-name": Case(
        lambda c: _deploy_path(c, _write(c, "ok.yaml", _spec()), block_name="../Evil Name"),
        (ConfigurationError,),
    ),
    # --- parameters and files (run_agent_session) -----------------------------------------
    "file-missing": Case(lambda c: _session(c, files=[str(c.tmp / "missing.csv")]), (InputFileError,)),
    "file-is-a-folder": Case(lambda c: _session(c, files=[str(c.tmp)]), (InputFileError,)),
    "file-relative-mount": Case(
        lambda c: _session(c, files=[{"path": c.file(), "mount_path": "data/input.csv"}]),
        (InputFileError, ParameterTypeError, pydantic.ValidationError),
    ),
    "file-dotdot-mount": Case(
        lambda c: _session(c, files=[{"path": c.file(), "mount_path": "/mnt/../etc/passwd"}]),
        (InputFileError, ParameterTypeError, pydantic.ValidationError),
    ),
    "file-duplicate-mount": Case(
        lambda c: _session(
            c,
            files=[
                {"path": c.file("a.csv"), "mount_path": "/mnt/in/x.csv"},
                {"path": c.file("b.csv"), "mount_path": "/mnt/in/x.csv"},
            ],
        ),
        (InputFileError,),
    ),
    "file-good-then-missing": Case(
        # The good file must not be uploaded when a later one is bad.
        lambda c: _session(c, files=[c.file(), str(c.tmp / "missing.csv")]),
        (InputFileError,),
    ),
    "block-missing": Case(lambda c: _session(c, agent="no-such-block"), (ManagedAgentsError,)),
    "block-bad-name": Case(lambda c: _session(c, agent="../../etc/passwd"), (ManagedAgentsError,)),
    "param-negative-duration": Case(
        lambda c: _session(c, max_duration_seconds=-1), (ParameterTypeError, pydantic.ValidationError)
    ),
    "param-policy-wrong-type": Case(
        lambda c: _session(c, confirmation_policy={"default": "sometimes"}),
        (ParameterTypeError, pydantic.ValidationError),
    ),
    "memory-store-unknown": Case(
        lambda c: _session(c, memory_stores=["no-such-store"]), (ManagedAgentsError,)
    ),
    "memory-store-too-many": Case(
        lambda c: _session(c, memory_stores=[f"store-{i}" for i in range(9)]),
        (ManagedAgentsError, ParameterTypeError, pydantic.ValidationError),
    ),
    # --- batches --------------------------------------------------------------------------
    "batch-traversal-key": Case(
        lambda c: _batch(c, [{"prompt": "x", "key": "../escape"}]),
        (ManagedAgentsError, ParameterTypeError, pydantic.ValidationError),
    ),
    "batch-empty-prompt": Case(
        lambda c: _batch(c, [{"prompt": ""}]),
        (ManagedAgentsError, ParameterTypeError, pydantic.ValidationError),
    ),
    "batch-missing-items-file": Case(lambda c: _batch(c, str(c.tmp / "items.jsonl")), (ManagedAgentsError,)),
    "batch-duplicate-keys": Case(
        lambda c: _batch(c, [{"prompt": "a", "key": "same"}, {"prompt": "b", "key": "same"}]),
        (ManagedAgentsError, ParameterTypeError, pydantic.ValidationError),
    ),
    "batch-task-items-asking-a-person": Case(
        lambda c: _batch(
            c, ["x"], item_runs="task", confirmation_policy={"default": "allow", "ask_tools": ["bash"]}
        ),
        (ManagedAgentsError,),
    ),
    # --- server answers (a broken stand-in server) ----------------------------------------
    "server-malformed-event-json": Case(
        _broken_stream(frame("agent.message", "{not json"), _processed_kickoff()), (ManagedAgentsError,)
    ),
    "server-error-frame": Case(
        _broken_stream(
            frame("error", '{"type":"error","error":{"type":"api_error","message":"boom"}}'),
            _processed_kickoff(),
        ),
        (ManagedAgentsError, anthropic.APIStatusError),
    ),
    "server-event-without-type": Case(
        _broken_stream(frame("agent.message", '{"id":"sevt_x"}'), _processed_kickoff()),
        (ManagedAgentsError,),
    ),
    # --- outputs the server names or cuts -------------------------------------------------
    "output-cut-every-time": Case(
        lambda c: _outputs(
            c, {"name": "cut.bin", "size": 300_000}, cut_download_after_bytes=1000, cut_download_times=1000
        ),
        (OutputIntegrityError,),
        writes_allowed=True,
    ),
    # --- parameters are data (docs/security.md) -------------------------------------------
    "security-base-url-exfiltration": Case(_inline_agent_session, (CredentialsDestinationError,)),
    "security-inline-agent-deployment-run": Case(
        lambda c: _deployment_run(
            "run_agent_session",
            {"agent": inline_agent("http://127.0.0.1:9"), "prompt": "x", "output_dir": str(c.out)},
        ),
        (InlineBlockError,),
    ),
    "security-automation-templated-agent": Case(
        lambda c: _deployment_run(
            "run_agent_session",
            automation_parameters(
                {"agent": "{{ event.payload.agent }}", "prompt": "x", "output_dir": str(c.out)},
                {"agent": inline_agent("http://127.0.0.1:9")},
            ),
        ),
        (InlineBlockError,),
    ),
    "security-tool-unregistered": Case(
        lambda c: _session(c, files=[c.file()], custom_tools=["no_such_tool"]), (UnknownCustomToolError,)
    ),
    "security-tool-import-path": Case(
        lambda c: _session(c, files=[c.file()], custom_tools=["subprocess:getoutput"]),
        (UnknownCustomToolError,),
    ),
    "security-tool-builtin": Case(
        lambda c: _session(c, files=[c.file()], custom_tools=["builtins:eval"]), (UnknownCustomToolError,)
    ),
    "security-inline-spec-import-path": Case(
        lambda c: _deployment_run(
            "deploy_agent",
            {"spec": {**GOOD_SPEC, "tools": ["os:system"]}, "block_name": "campaign-agent"},
        ),
        (UnknownCustomToolError,),
    ),
    "security-file-dotdot": Case(
        _narrowed(lambda c, i: _session(c, files=[str(i / ".." / "secret" / "credentials")])),
        (PathOutsideRootsError,),
    ),
    "security-file-symlink": Case(_narrowed(_symlinked_input), (PathOutsideRootsError,)),
    "security-file-tilde": Case(
        _narrowed(lambda c, i: _session(c, files=["~/.aws/credentials"])), (PathOutsideRootsError,)
    ),
    "security-file-absolute": Case(
        _narrowed(lambda c, i: _session(c, files=["/etc/passwd"])), (PathOutsideRootsError,)
    ),
    "security-output-dir-tilde": Case(
        _narrowed(lambda c, i: _session(c, output_dir="~/.ssh")), (PathOutsideRootsError,)
    ),
    "security-output-dir-dotdot": Case(
        _narrowed(lambda c, i: _session(c, output_dir=str(c.out / ".." / "secret"))), (PathOutsideRootsError,)
    ),
    "security-output-dir-symlink": Case(_narrowed(_symlinked_output), (PathOutsideRootsError,)),
    "security-batch-items-outside": Case(_narrowed(_items_outside), (PathOutsideRootsError,)),
    "security-spec-path-outside": Case(
        _narrowed(lambda c, i: _deploy_path(c, c.tmp / "secret" / "credentials")), (PathOutsideRootsError,)
    ),
    "security-output-overwrite": Case(_narrowed(_overwrite), (OutputOverwriteError,), writes_allowed=True),
}


def _with_credentials(ctx: CaseContext, **changes: Any) -> Any:
    from blocks.agent import ManagedAgent

    block = ManagedAgent.load(ctx.block, _sync=True)  # type: ignore[call-arg]
    assert isinstance(block, ManagedAgent)
    creds = block.credentials.model_copy(update=changes)
    return _session(ctx, agent=block.model_copy(update={"credentials": creds}))


if MODE == "long":
    # Slow to fail today (task retries times SDK retries: minutes), so only in the long form.
    CASES["credentials-unreachable"] = Case(
        lambda c: _with_credentials(c, base_url="http://127.0.0.1:9"), (ManagedAgentsError,)
    )

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_gets_a_typed_error_and_leaves_nothing_behind(
    name: str, emulator: EmulatorServer, agent_block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without these, the credential cases would fall back to a developer's real settings.
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    case = CASES[name]
    ctx = CaseContext(emulator, agent_block, tmp_path, tmp_path / "out", monkeypatch)
    emulator.control.clear_requests()
    started = time.monotonic()
    error: BaseException | None = None
    try:
        case.run(ctx)
    except BaseException as exc:
        error = exc
    elapsed = time.monotonic() - started
    writes = [r for r in emulator.control.requests() if r["method"] in WRITE_METHODS]
    partial = leftovers(ctx.out)
    written = sorted(p.name for p in ctx.out.rglob("*") if p.is_file()) if ctx.out.exists() else []
    typed = isinstance(error, case.expected)
    message = (str(error).strip() or type(error).__name__).splitlines()[0][:120] if error else "no error"
    line = record(
        f"bad input {name}",
        error=type(error).__name__ if error else "none",
        typed=typed,
        write_requests=len(writes),
        files_left=len(partial) if case.writes_allowed else len(written),
        seconds=round(elapsed, 1),
        message=repr(message),
    )
    assert error is not None, f"no error at all: {line}"
    assert TEST_API_KEY not in str(error), "the API key leaked into an error message"
    assert typed, f"expected {[t.__name__ for t in case.expected]}: {line}"
    if not case.writes_allowed:
        assert writes == [], f"write requests reached the API: {writes}; {line}"
        assert written == [], f"files were written: {written}; {line}"
    assert partial == [], f"partial files left behind: {partial}; {line}"


def test_the_campaign_has_at_least_30_bad_inputs() -> None:
    from .test_output_names import HOSTILE_NAMES

    assert len(CASES) + len(HOSTILE_NAMES) >= 30


def test_unknown_event_types_are_passed_over_and_the_turn_ends_normally() -> None:
    """A newer API may send event types this SDK does not know: they must not break the run."""
    from managed_agents_core.events import user_message
    from managed_agents_core.lifecycle import adrive_session

    unknown = event_json("agent.future_feature", 1, payload={"x": 1})
    history = [*_processed_kickoff(), {"type": "agent.future_feature", "id": "sevt_fake0001"}, eval_idle()]

    async def main() -> Any:
        with BrokenApi(
            frame("agent.future_feature", unknown) + frame("session.status_idle", IDLE), history
        ) as api:
            async with anthropic.AsyncAnthropic(api_key="k", base_url=api.url, max_retries=0) as client:
                async with asyncio.timeout(STREAM_BOUND_SECONDS):
                    return await adrive_session(
                        client, SESSION_ID, TurnRequest(kickoff=[user_message("go")]), console_url="-"
                    )

    report = asyncio.run(main())
    line = record(
        "unknown event type on the stream",
        outcome=report.outcome.event_kind,
        stop_reason=report.end.stop_reason,
        events=report.transcript.event_count,
    )
    assert report.end.kind == "idle" and report.end.stop_reason == "end_turn", line
    assert "sevt_fake0001" in report.transcript.event_ids, line


def eval_idle() -> dict[str, Any]:
    """The idle event of the broken server's history, as a dict."""
    import json

    return dict(json.loads(IDLE))
