"""Custom tools come from a registry, not from import paths in parameters (docs/security.md).

Before: ``custom_tools`` (and a spec's ``tools``) took ``"package.module:function"`` import paths
from the parameters, so anything importable (``"os:system"``, ``"subprocess:getoutput"``) became a
tool the model could call. Now a parameter or an inline spec may only name a registered tool;
anything else is a typed error before anything is imported, uploaded or created.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest
import yaml

from emulator import EmulatorServer
from managed_agents_core.exceptions import UnknownCustomToolError
from tests.integration.session_helpers import scenario

from .conftest import Roots
from .helpers import automation_parameters, files_under, run_as_deployment, state_error

pytestmark = pytest.mark.usefixtures("prefect_harness")

CANARY = "tests.security.canary_tool_module"
HOSTILE_REFERENCES = [
    "os:system",
    "subprocess:getoutput",
    "subprocess.getoutput",
    "builtins:eval",
    "eval",
    f"{CANARY}:boom",
    "no_such_tool",
]


def _spec(tools: list[Any]) -> dict[str, Any]:
    return {
        "name": "security-agent",
        "model": "claude-opus-4-8",
        "tools": tools,
        "environment": {"name": "e"},
    }


def _nothing_happened(emulator: EmulatorServer, roots: Roots) -> None:
    assert emulator.control.requests() == [], "the worker's API was called"
    assert files_under(roots.outputs) == []
    assert CANARY not in sys.modules, "a parameter made the worker import a module"


@pytest.mark.parametrize("reference", HOSTILE_REFERENCES)
def test_a_custom_tools_parameter_cannot_make_the_worker_import_code(
    reference: str, saved_agent: str, roots: Roots, emulator: EmulatorServer
) -> None:
    """From Python, with an input file to upload: the typed error comes first; nothing uploaded."""
    from flows.session import run_agent_session

    with pytest.raises(UnknownCustomToolError, match="register") as caught:
        run_agent_session(
            agent=saved_agent,
            prompt="hi",
            files=[str(roots.inputs / "ok.csv")],
            output_dir=str(roots.outputs),
            custom_tools=[reference],
        )
    assert "MANAGED_AGENTS_TOOL_MODULES" in str(caught.value)
    _nothing_happened(emulator, roots)


@pytest.mark.parametrize("flow_name", ["run_agent_session", "continue_agent_session"])
def test_a_deployment_run_cannot_name_an_import_path(
    flow_name: str, saved_agent: str, roots: Roots, emulator: EmulatorServer
) -> None:
    """A deployment run (parameters from the Run form, the API or an Automation) naming
    ``subprocess:getoutput``: refused before any upload, create or send."""
    from flows.follow_up import continue_agent_session
    from flows.session import run_agent_session

    parameters: dict[str, Any] = {
        "agent": saved_agent,
        "prompt": "hi",
        "output_dir": str(roots.outputs),
        "custom_tools": ["subprocess:getoutput"],
    }
    if flow_name == "run_agent_session":
        flow: Any = run_agent_session
        parameters["files"] = [str(roots.inputs / "ok.csv")]
    else:
        flow, parameters["session_id"] = continue_agent_session, "sesn_x"
    error = state_error(run_as_deployment(flow, parameters))
    assert isinstance(error, UnknownCustomToolError), repr(error)
    _nothing_happened(emulator, roots)


@pytest.mark.parametrize("source", ["python", "deployment-run", "automation", "spec-file"])
def test_an_inline_spec_with_an_import_path_creates_nothing(
    source: str, roots: Roots, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``deploy_agent`` with a spec whose custom tools are import paths (inline, from an Automation's
    event, or in a spec file inside the input root): typed error, no environment, no agent."""
    from blocks.credentials import AnthropicCredentials
    from flows.setup import deploy_agent
    from tests.conftest import TEST_API_KEY

    monkeypatch.setenv("ANTHROPIC_API_KEY", TEST_API_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", emulator.url)
    spec = _spec(["os:system", f"{CANARY}:boom"])
    if source == "python":
        with pytest.raises(UnknownCustomToolError):
            deploy_agent(spec, "security-spec", credentials=AnthropicCredentials())
    elif source == "spec-file":
        path = roots.inputs / "agent.yaml"
        path.write_text(yaml.safe_dump(spec))
        error = state_error(
            run_as_deployment(deploy_agent, {"spec": str(path), "block_name": "security-spec"})
        )
        assert isinstance(error, UnknownCustomToolError), repr(error)
    else:
        parameters = {"spec": spec, "block_name": "security-spec"}
        if source == "automation":
            parameters = automation_parameters(
                {"spec": "{{ event.payload.spec }}", "block_name": "security-spec"}, {"spec": spec}
            )
        error = state_error(run_as_deployment(deploy_agent, parameters))
        assert isinstance(error, UnknownCustomToolError), repr(error)
    _nothing_happened(emulator, roots)


def test_registered_tools_work_by_name_in_a_deployment_run(
    saved_agent: str, roots: Roots, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Positive control: a tool registered with ``@custom_tool`` in a module listed in
    ``MANAGED_AGENTS_TOOL_MODULES`` (imported at lookup) runs, named by the parameters; its import
    path is accepted too, because its module is an allowed one."""
    from flows.session import run_agent_session

    monkeypatch.setenv("MANAGED_AGENTS_TOOL_MODULES", "tests.security.registered_tools")
    prompt = scenario(custom_tools=[{"name": "security_echo", "input": {"text": "hi"}}])
    for reference in ("security_echo", "tests.security.registered_tools:security_echo"):
        state = run_as_deployment(
            run_agent_session,
            {
                "agent": saved_agent,
                "prompt": prompt,
                "output_dir": str(roots.outputs),
                "custom_tools": [reference],
            },
        )
        assert state.is_completed(), state.message
        assert "security_echo returned: echo hi" in state.result().final_message


def test_a_spec_file_names_registered_tools(
    roots: Roots, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, prefect_harness: None
) -> None:
    """Positive control: a spec file listing a registered tool's name deploys it as a custom tool."""
    from blocks.credentials import AnthropicCredentials
    from flows.setup import deploy_agent
    from tests.conftest import TEST_API_KEY

    monkeypatch.setenv("MANAGED_AGENTS_TOOL_MODULES", "tests.security.registered_tools")
    path = roots.inputs / "agent.yaml"
    path.write_text(yaml.safe_dump(_spec(["security_echo"])))
    block = deploy_agent(
        str(path),
        "security-registered",
        credentials=AnthropicCredentials(api_key=TEST_API_KEY, base_url=emulator.url),
    )
    assert block.version == 1


def test_the_canary_module_is_importable() -> None:
    """The canary is a real module: had a lookup imported it, ``sys.modules`` would show it."""
    import importlib.util

    assert importlib.util.find_spec(CANARY) is not None
