"""The session report: one markdown page per session, for a person reading the run.

What happened and what it cost first, then the outcome's grades, the output files, the memory
changes, and the transcript folded away at the end. Every table is narrow enough for a laptop
screen (short digests, file names rather than absolute paths) and no text is set in backticks
(the Prefect UI shows them literally inside links and tables).
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .batch_items import BatchItemResult, BatchResult
from .lifecycle import SessionRunReport
from .memory_audit import MemoryChange, summarize
from .results import OutcomeEvaluation, OutputFile, ThreadSummary, UsageSummary, cost_text
from .transcript import Transcript

DIGEST_CHARS = 12
"""Leading hex digits of a SHA-256 shown in tables (the result keeps the whole digest)."""

CELL_CHARS = 200
"""Longest text shown in one table cell."""

ROLE_HTML = {
    "user": "<b>User</b>",
    "agent": "<b>Agent</b>",
    "tool": "<b>Tool call</b>",
    "tool-result": "<b>Tool result</b>",
    "error": "<b>Error</b>",
    "status": "<i>Status</i>",
    "delegated": "<b>Delegated</b>",
    "reply": "<b>Reply</b>",
}


def report_key(agent_name: str) -> str:
    """The report artifact's key: one per agent, so the Artifacts page keeps a history per agent.

    Args:
        agent_name: The remote agent's name.
    """
    slug = re.sub(r"[^a-z0-9-]+", "-", agent_name.lower()).strip("-") or "agent"
    return f"{slug[:180]}-session-report"


def _cell(text: str | None, limit: int = CELL_CHARS) -> str:
    """Free text (the agent's, the service's) on one line, cut, with no markup of its own."""
    text = " ".join((text or "").split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return html.escape(text, quote=False).replace("|", "\\|")


def _size(size: int) -> str:
    if size < 1024:
        return f"{size:,} bytes"
    value = size / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} GiB"


def _count(n: int, noun: str) -> str:
    """``1 task``, ``2 tasks``, ``1 reply``, ``2 replies``."""
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{n} {noun if n == 1 else plural}"


def _folder(paths: Sequence[str]) -> str:
    """The folder all ``paths`` share ("" when they share none)."""
    try:
        return os.path.commonpath([os.path.dirname(p) or "." for p in paths])
    except ValueError:  # absolute and relative paths mixed
        return ""


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


@dataclass(frozen=True)
class SessionReport:
    """What the report page shows about one session (or one turn of it).

    Attributes:
        agent_name: The remote agent's name (heading).
        session_id: The session.
        console_url: The session's page in the Claude Console.
        headline: One word or phrase for the state: ``Completed``, ``Failed: ...``,
            ``Waiting for approval``, ``Streaming stopped (<error>)``.
        transcript: What the run saw.
        status: The session's status, when known.
        stop_reason: Why the turn ended, when known.
        usage: Cumulative usage and cost, when known.
        outcome_grades: Each graded iteration of an outcome, from the stream.
        final_evaluations: The session's own last word on each outcome.
        outputs: The output files collected (None when none were asked for).
        memory_changes: What the session wrote to its memory stores (None when not audited).
        threads: A multi-agent session's threads: which agent did what, and its usage.
    """

    agent_name: str
    session_id: str
    console_url: str
    headline: str
    transcript: Transcript
    status: str | None = None
    stop_reason: str | None = None
    usage: UsageSummary | None = None
    outcome_grades: Sequence[OutcomeEvaluation] = ()
    final_evaluations: Sequence[OutcomeEvaluation] = ()
    outputs: Sequence[OutputFile] | None = None
    memory_changes: Sequence[MemoryChange] | None = None
    threads: Sequence[ThreadSummary] = ()

    @property
    def summary(self) -> str:
        """One line: state, stop reason, cost and size of the run (the artifact's description,
        which the UI shows above the page and on the Artifacts page's card)."""
        ended = f"{self.status or 'unknown'} ({self.stop_reason})" if self.stop_reason else self.status
        parts = [
            f"**{self.headline}**",
            ended,
            cost_text(self.usage),
            f"{self.transcript.event_count:,} events",
        ]
        if self.outputs is not None:
            parts.append(f"{len(self.outputs)} output file(s)")
        return " · ".join(p for p in parts if p)

    def to_markdown(self) -> str:
        """The whole page."""
        lines = [
            f"# {self.agent_name}: {self.headline}",
            "",
            f"[Open session {self.session_id} in the Claude Console]({self.console_url})",
        ]
        sections = (self._usage, self._agents, self._outcome, self._outputs, self._memory, self._transcript)
        for section in sections:
            lines += ["", *section()]
        return "\n".join(line.rstrip() for line in lines).rstrip() + "\n"

    def _usage(self) -> list[str]:
        usage = self.usage or self.transcript.usage
        cost = f"{usage.cost_usd:.2f}" if usage.cost_usd is not None else "n/a"
        return [
            "## Usage",
            "",
            *_table(
                [
                    "input",
                    "output",
                    "cache read",
                    "cache write",
                    "active s",
                    "model requests",
                    "list cost (USD)",
                ],
                [
                    [
                        f"{usage.input_tokens:,}",
                        f"{usage.output_tokens:,}",
                        f"{usage.cache_read_input_tokens:,}",
                        f"{usage.cache_creation_input_tokens:,}",
                        f"{usage.active_seconds:g}",
                        str(self.transcript.model_requests),
                        cost,
                    ]
                ],
            ),
        ]

    def _agents(self) -> list[str]:
        if not self.threads:
            return []
        rows = []
        for t in self.threads:
            usage = t.usage
            tokens = f"{usage.input_tokens:,} / {usage.output_tokens:,}" if usage else "not listed yet"
            cost = f"{usage.cost_usd:.2f}" if usage and usage.cost_usd is not None else "n/a"
            work = (
                "coordinator"
                if t.primary
                else f"{_count(t.tasks_sent, 'task')}, {_count(t.replies, 'reply')}"
            )
            ended = f"{t.status} ({t.stop_reason})" if t.stop_reason else t.status
            rows.append([_cell(t.agent_name, 60), work, ended, tokens, cost])
        return [
            "## Agents",
            "",
            *_table(["agent", "work", "status", "tokens in / out", "list cost (USD)"], rows),
            "",
            "One row per session thread (ids in the transcript and the run's result). Each thread's "
            "list cost is rounded on its own and leaves out runtime: the usage above is the total.",
        ]

    def _outcome(self) -> list[str]:
        if not self.outcome_grades and not self.final_evaluations:
            return []
        rows = [[g.outcome_id, str(g.iteration), g.result, _cell(g.explanation)] for g in self.outcome_grades]
        rows += [
            [f.outcome_id, f"{f.iteration} (final)", f.result, _cell(f.explanation)]
            for f in self.final_evaluations
        ]
        return ["## Outcome", "", *_table(["outcome", "iteration", "result", "explanation"], rows)]

    def _outputs(self) -> list[str]:
        if self.outputs is None:
            return []
        if not self.outputs:
            return ["## Output files", "", "The session left no output files."]
        folder = _folder([f.path for f in self.outputs])
        rows = [
            [
                _cell(os.path.relpath(f.path, folder) if folder else f.path, 80),
                _size(f.size_bytes),
                f.sha256[:DIGEST_CHARS],
                "kept (identical)" if f.skipped else "downloaded",
            ]
            for f in self.outputs
        ]
        return [
            "## Output files",
            "",
            *([f"Written to {folder}", ""] if folder else []),
            *_table(["file", "size", "sha256", "copy"], rows),
        ]

    def _memory(self) -> list[str]:
        if self.memory_changes is None:
            return []
        if not self.memory_changes:
            return ["## Memory changes", "", "No memory store was changed."]
        net = summarize(self.memory_changes)
        rows = [
            [
                op,
                _cell(c.path or "(redacted)", 80),
                f"{c.size_bytes:,}" if c.size_bytes is not None else "-",
                (c.sha256 or "-")[:DIGEST_CHARS],
            ]
            for op, changes in net.items()
            for c in changes
        ]
        versions = [
            [
                c.version_id,
                c.operation,
                _cell(c.path or "(redacted)", 80),
                (c.sha256 or "-")[:DIGEST_CHARS],
                c.actor,
            ]
            for c in self.memory_changes
        ]
        return [
            "## Memory changes",
            "",
            ", ".join(f"{op}: {len(items)}" for op, items in net.items()),
            "",
            *_table(["change", "path", "bytes", "sha256"], rows),
            "",
            "### Every version written",
            "",
            *_table(["version", "operation", "path", "sha256", "by"], versions),
        ]

    def _transcript(self) -> list[str]:
        t = self.transcript
        counts = {role: sum(1 for e in t.entries if e.role == role) for role in ("agent", "tool", "error")}
        lines = [
            "## Transcript",
            "",
            f"{counts['agent']} agent message(s), {counts['tool']} tool call(s), "
            f"{len(t.errors)} error(s), {t.event_count:,} events.",
        ]
        if t.final_message:
            lines += ["", f"Last agent message: {_cell(t.final_message, 500)}"]
        if t.errors:
            lines += ["", "### Errors", ""]
            lines += _table(
                ["event", "type", "retry status", "message"],
                [[e.event_id, e.type, e.retry_status, _cell(e.message, 300)] for e in t.errors],
            )
        # One HTML block (no blank line inside): a markdown list inside <details> would be
        # rendered outside it by the Prefect UI, so the entries are escaped HTML list items.
        items = [
            f"<li>{ROLE_HTML.get(entry.role, html.escape(entry.role))}: "
            f"{html.escape(entry.text, quote=False).replace(chr(10), '<br>')}</li>"
            for entry in t.entries
        ]
        if t.omitted_entries:
            items.append(f"<li>… {t.omitted_entries} more entries omitted</li>")
        lines += [
            "",
            f"<details><summary>Full transcript ({len(t.entries)} entries)</summary>",
            "<ul>",
            *items,
            "</ul>",
            "</details>",
        ]
        return lines


def turn_report(
    agent_name: str,
    report: SessionRunReport,
    headline: str,
    *,
    outputs: Sequence[OutputFile] | None = None,
    memory_changes: Sequence[MemoryChange] | None = None,
    final_evaluations: Sequence[OutcomeEvaluation] = (),
) -> SessionReport:
    """The report of a turn that ended (completed, failed or paused for an approval).

    Args:
        agent_name: The remote agent's name.
        report: What the turn's stream saw.
        headline: ``Completed``, ``Failed: <error>``, ``Waiting for approval``.
        outputs: The output files collected, when asked for.
        memory_changes: The session's memory writes, when audited.
        final_evaluations: The session's final outcome grades.
    """
    return SessionReport(
        agent_name=agent_name,
        session_id=report.session_id,
        console_url=report.console_url,
        headline=headline,
        transcript=report.transcript,
        status=report.status,
        stop_reason=report.end.stop_reason,
        usage=report.usage,
        outcome_grades=report.transcript.outcome_grades,
        final_evaluations=final_evaluations,
        outputs=outputs,
        memory_changes=memory_changes,
        threads=report.threads,
    )


def batch_report(
    result: BatchResult,
    *,
    output_dir: str,
    run_url: Callable[[BatchItemResult], str | None],
    console_url: Callable[[str], str],
) -> str:
    """The batch's markdown report: totals, then one row per item linking its run and session.

    Args:
        result: The batch result.
        output_dir: The batch's output folder (each item writes to its own subfolder).
        run_url: The URL of an item's flow run or task run in the Prefect UI (None: no run).
        console_url: The Claude Console URL of a session.
    """
    lines = [
        f"# Batch: {_cell(result.summary())}",
        "",
        f"{result.usage.input_tokens:,} input / "
        f"{result.usage.output_tokens:,} output tokens · outputs in {_cell(output_dir)}/&lt;item&gt;/",
        "",
        "| item | state | session | stop reason / error | tokens in / out | cost |",
        "|---|---|---|---|---|---|",
    ]
    for item in result.items:
        url = run_url(item)
        name = f"[{_cell(item.key)}]({url})" if url else _cell(item.key)
        session = f"[{item.session_id}]({console_url(item.session_id)})" if item.session_id else ""
        usage = item.result.usage if item.result is not None else UsageSummary()
        if item.result is not None:
            reason = _cell(item.result.stop_reason or "")
        else:
            reason = _cell(f"{item.error_type}: {item.error}" if item.error_type else "", 120)
        cost = f"${item.cost_usd:.2f}" if item.cost_usd is not None else ""
        files = len(item.result.output_files) if item.result is not None else 0
        state = f"{item.state}, {files} file(s)" if files else item.state
        lines.append(
            f"| {name} | {state} | {session} | {reason} | {usage.input_tokens:,} / "
            f"{usage.output_tokens:,} | {cost} |"
        )
    return "\n".join(lines)
