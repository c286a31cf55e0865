"""The session report page: its sections, and tables that fit a laptop screen."""

from __future__ import annotations

from decimal import Decimal

import pytest

from managed_agents_core.memory_audit import MemoryChange
from managed_agents_core.report import DIGEST_CHARS, SessionReport, report_key
from managed_agents_core.results import OutcomeEvaluation, OutputFile, UsageSummary
from managed_agents_core.transcript import Transcript

SHA = "ab" * 32


def _report(**fields: object) -> SessionReport:
    base: dict[str, object] = {
        "agent_name": "Nightly Writer",
        "session_id": "sesn_011ABC",
        "console_url": "https://platform.claude.com/workspaces/default/sessions/sesn_011ABC",
        "headline": "Completed",
        "transcript": Transcript(),
        "status": "idle",
        "stop_reason": "end_turn",
        "usage": UsageSummary(
            input_tokens=1200, output_tokens=340, active_seconds=12.5, cost_usd=Decimal("0.1234")
        ),
    }
    return SessionReport(**{**base, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Nightly Writer", "nightly-writer-session-report"),
        ("  ACME/agent_v2 ", "acme-agent-v2-session-report"),
        ("???", "agent-session-report"),
    ],
)
def test_the_key_is_one_per_agent_and_valid_for_prefect(name: str, key: str) -> None:
    assert report_key(name) == key


def test_a_plain_session_shows_state_cost_link_usage_and_transcript_only() -> None:
    report = _report()
    md = report.to_markdown()
    assert report.summary == "**Completed** · idle (end_turn) · list cost $0.12 · 0 events"
    assert md.splitlines()[:3] == [
        "# Nightly Writer: Completed",
        "",
        "[Open session sesn_011ABC in the Claude Console]"
        "(https://platform.claude.com/workspaces/default/sessions/sesn_011ABC)",
    ]
    assert "| 1,200 | 340 | 0 | 0 | 12.5 | 0 | 0.12 |" in md
    assert "## Transcript" in md and "<details><summary>Full transcript (0 entries)</summary>" in md
    for absent in ("## Outcome", "## Output files", "## Memory changes", "`"):
        assert absent not in md


def test_the_transcript_folds_into_one_html_block_with_its_text_escaped() -> None:
    from anthropic.types.beta.sessions import BetaManagedAgentsSessionEvent
    from pydantic import TypeAdapter

    transcript = Transcript()
    transcript.add(
        TypeAdapter(BetaManagedAgentsSessionEvent).validate_python(
            {
                "type": "agent.message",
                "id": "sevt_1",
                "content": [{"type": "text", "text": "<script>x</script> line one\n\nline two"}],
                "processed_at": "2026-03-15T10:00:03Z",
            }
        )
    )
    md = _report(transcript=transcript).to_markdown()
    assert "Last agent message: &lt;script&gt;x&lt;/script&gt; line one line two" in md
    folded = md[md.index("<details>") : md.index("</details>")]
    assert "\n\n" not in folded  # a blank line would end the HTML block and unfold the rest
    assert "<li><b>Agent</b>: &lt;script&gt;x&lt;/script&gt; line one<br><br>line two</li>" in folded


def test_outputs_are_named_relative_to_their_folder_with_short_digests() -> None:
    outputs = [
        OutputFile(file_id="file_1", filename="a.md", path="/srv/out/run-7/a.md", size_bytes=3, sha256=SHA),
        OutputFile(
            file_id="file_2",
            filename="b.csv",
            path="/srv/out/run-7/data/b.csv",
            size_bytes=3 * 2**20,
            sha256=SHA,
            skipped=True,
        ),
    ]
    report = _report(outputs=outputs)
    md = report.to_markdown()
    assert "Written to /srv/out/run-7" in md
    assert f"| a.md | 3 bytes | {SHA[:DIGEST_CHARS]} | downloaded |" in md
    assert f"| data/b.csv | 3.0 MiB | {SHA[:DIGEST_CHARS]} | kept (identical) |" in md
    assert SHA not in md and "2 output file(s)" in report.summary
    assert "The session left no output files." in _report(outputs=[]).to_markdown()


def test_outcome_grades_and_the_final_word_are_one_table() -> None:
    grades = [
        OutcomeEvaluation(
            outcome_id="outc_1", iteration=0, result="needs_revision", explanation="no | title"
        ),
        OutcomeEvaluation(outcome_id="outc_1", iteration=1, result="satisfied", explanation="ok"),
    ]
    final = [OutcomeEvaluation(outcome_id="outc_1", iteration=1, result="satisfied", explanation="ok")]
    md = _report(outcome_grades=grades, final_evaluations=final).to_markdown()
    assert "| outc_1 | 0 | needs_revision | no \\| title |" in md
    assert "| outc_1 | 1 (final) | satisfied | ok |" in md


def test_memory_changes_show_the_net_effect_then_every_version() -> None:
    changes = [
        MemoryChange(
            store_id="memstore_1",
            version_id="memver_1",
            memory_id="mem_1",
            operation="created",
            path="/notes.md",
            sha256=SHA,
            size_bytes=10,
            actor="session_actor:sesn_011ABC",
        ),
        MemoryChange(
            store_id="memstore_1",
            version_id="memver_2",
            memory_id="mem_1",
            operation="modified",
            path="/notes.md",
            sha256=SHA,
            size_bytes=12,
            actor="session_actor:sesn_011ABC",
        ),
    ]
    md = _report(memory_changes=changes).to_markdown()
    assert "created: 1, modified: 0, deleted: 0" in md
    assert f"| created | /notes.md | 12 | {SHA[:DIGEST_CHARS]} |" in md
    assert "| memver_2 | modified | /notes.md |" in md and "session_actor:sesn_011ABC" in md
    assert "No memory store was changed." in _report(memory_changes=[]).to_markdown()


def test_a_report_without_usage_says_the_cost_is_unknown() -> None:
    report = _report(usage=None, status=None, stop_reason=None, headline="Streaming stopped (ReadError)")
    assert report.summary == "**Streaming stopped (ReadError)** · list cost not reported · 0 events"
