"""Flow-run names: the agent, then the start of the prompt on one line."""

from __future__ import annotations

from blocks.agent import ManagedAgent
from blocks.credentials import AnthropicCredentials
from flows.run_names import PROMPT_CHARS, agent_label, prompt_head


def test_a_long_prompt_is_cut_on_one_line() -> None:
    prompt = "Summarise\n\n  the   files " + "x" * 100
    head = prompt_head(prompt)
    assert head.startswith("Summarise the files x") and head.endswith("…")
    assert len(head) == PROMPT_CHARS and "\n" not in head
    assert prompt_head("short prompt") == "short prompt"


def test_the_agent_is_named_by_its_saved_block_else_its_remote_name() -> None:
    block = ManagedAgent(
        credentials=AnthropicCredentials(api_key="sk-test"),
        agent_id="agent_1",
        version=1,
        environment_id="env_1",
        agent_name="researcher",
    )
    assert agent_label(block) == "researcher"
    block._block_document_name = "nightly-researcher"
    assert agent_label(block) == "nightly-researcher"
    assert agent_label("saved-block") == "saved-block"
    assert agent_label(None) == "agent"
