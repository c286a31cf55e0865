"""Batch inputs and results: the items of ``run_agent_batch``, loading them from JSONL or CSV, and
the spend ledger that decides whether another session may start.

Plain logic (no Prefect run needed), so tests call it directly.

File formats (decided here; the issue leaves them open):

* **JSONL**: one JSON object per line with the :class:`BatchItem` fields; blank lines and lines
  starting with ``#`` are skipped.
* **CSV**: a header row; ``prompt`` is required; ``key`` is optional; ``files`` and
  ``memory_stores`` hold ``;``-separated paths / store ids or names; every other non-empty column
  becomes an entry of the item's ``metadata``.

Relative input-file paths in a file are resolved against the folder of that file, so a batch
file and its inputs can move together. With ``roots`` (as ``run_agent_batch`` passes them) the
batch file and every item's files must resolve inside those input roots, and ``~`` is not
expanded (see :mod:`managed_agents_core.roots`).
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from .budgets import CENT, whole_cents
from .exceptions import ConfigurationError, ManagedAgentsError
from .inputs import InputFile, MemoryStoreAttachment
from .outcome_spec import OutcomeSpec
from .repositories import GitHubRepository
from .results import SessionResult, UsageSummary, cost_text
from .roots import check_inside_roots

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
CSV_LIST_SEPARATOR = ";"
"""Separator of several paths or stores inside one CSV cell."""


class BatchItemsError(ConfigurationError):
    """The batch items (a list, or a JSONL/CSV file) are invalid; nothing was started."""


class BatchItem(BaseModel):
    """One input of a batch: one session per item, outputs in their own folder."""

    prompt: str = Field(min_length=1, description="The task for the agent: the first user message.")
    files: list[InputFile | str] = Field(
        default_factory=list, description="Local files to upload and mount (a path, or {path, mount_path})."
    )
    memory_stores: list[MemoryStoreAttachment | str] = Field(
        default_factory=list, description="Memory stores to attach to this item's session, by id or name."
    )
    github_repositories: list[GitHubRepository] = Field(
        default_factory=list,
        description="GitHub repositories to mount (https://github.com/<owner>/<repo>, or {url, branch or "
        "commit, mount_path}); the token is the block's.",
    )
    metadata: dict[str, str] = Field(
        default_factory=dict, description="Free-form labels of the item, shown in the batch table and result."
    )
    outcome: OutcomeSpec | None = Field(
        default=None,
        description="Send this outcome (user.define_outcome with a rubric) instead of the prompt.",
    )
    key: str | None = Field(
        default=None,
        description="Unique name of the item (letters, digits, '.', '_', '-'); names its output folder. "
        "Default: item-<position>.",
    )

    @field_validator("key")
    @classmethod
    def _safe_key(cls, value: str | None) -> str | None:
        if value is not None and (not _KEY.match(value) or value in (".", "..")):
            raise ValueError(
                f"key {value!r} must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit."
            )
        return value

    @field_validator("metadata", mode="before")
    @classmethod
    def _stringify_metadata(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): "" if v is None else str(v) for k, v in value.items()}
        return value


def default_key(position: int) -> str:
    """Key of an item that has none: ``item-0001`` for the first (1-based, zero-padded)."""
    return f"item-{position:04d}"


def _rebase(path: str, base: Path) -> str:
    return path if os.path.isabs(os.path.expanduser(path)) else str(base / path)


def _rebase_files(files: Sequence[InputFile | str], base: Path) -> list[InputFile | str]:
    return [
        _rebase(entry, base)
        if isinstance(entry, str)
        else entry.model_copy(update={"path": _rebase(entry.path, base)})
        for entry in files
    ]


def _split_cell(cell: str | None) -> list[str]:
    return [part.strip() for part in (cell or "").split(CSV_LIST_SEPARATOR) if part.strip()]


def _rows_from_jsonl(path: Path) -> list[tuple[int, Any]]:
    rows: list[tuple[int, Any]] = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            try:
                rows.append((number, json.loads(text)))
            except json.JSONDecodeError as exc:
                raise BatchItemsError(f"{path}:{number}: not valid JSON ({exc.msg}).") from None
    return rows


def _rows_from_csv(path: Path) -> list[tuple[int, Any]]:
    rows: list[tuple[int, Any]] = []
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or "prompt" not in reader.fieldnames:
            raise BatchItemsError(f"{path}: a CSV batch file needs a header row with a 'prompt' column.")
        for row in reader:
            if not any((value or "").strip() for value in row.values() if isinstance(value, str)):
                continue
            known = {"prompt", "key", "files", "memory_stores", "github_repositories"}
            extra = row.get(None)
            if extra:
                raise BatchItemsError(f"{path}:{reader.line_num}: more cells than header columns.")
            item: dict[str, Any] = {
                "prompt": row.get("prompt") or "",
                "files": _split_cell(row.get("files")),
                "memory_stores": _split_cell(row.get("memory_stores")),
                "github_repositories": _split_cell(row.get("github_repositories")),
                "metadata": {k: v for k, v in row.items() if k not in known and k is not None and v},
            }
            if row.get("key"):
                item["key"] = row["key"]
            rows.append((reader.line_num, item))
    return rows


def load_batch_items(
    items: Sequence[BatchItem | Mapping[str, Any] | str] | str | os.PathLike[str],
    roots: Sequence[Path] | None = None,
) -> list[BatchItem]:
    """Return the batch's items, validated, each with a unique key.

    Args:
        items: A list of items (models, dicts, or plain prompts), or the path of a ``.jsonl`` or
            ``.csv`` file of them.
        roots: Input roots (resolved): the batch file and every item's files must be inside
            them (checked before the file is read). None: no check, and ``~`` is expanded
            (for Python callers; ``run_agent_batch`` always passes its roots).

    Returns:
        The items in order; an item without ``key`` gets ``item-<position>``.

    Raises:
        BatchItemsError: The file is missing or of an unknown kind, a row is invalid, or two
            items share a key. The message names the line (files) or position (lists).
        PathOutsideRootsError: With ``roots``, the batch file or an item's file is outside them.
    """
    rows: list[tuple[str, Any]]
    base: Path | None = None
    if isinstance(items, str | os.PathLike):
        if roots is not None:
            path = check_inside_roots(items, roots, kind="input", what="batch items file")
        else:
            path = Path(items).expanduser()
        if not path.is_file():
            raise BatchItemsError(f"Batch file {str(path)!r} does not exist.")
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".ndjson"):
            raw = _rows_from_jsonl(path)
        elif suffix == ".csv":
            raw = _rows_from_csv(path)
        else:
            raise BatchItemsError(f"Batch file {str(path)!r} must end in .jsonl, .ndjson or .csv.")
        rows = [(f"{path}:{number}", row) for number, row in raw]
        base = path.resolve().parent
    else:
        rows = [(f"item {position}", row) for position, row in enumerate(items, start=1)]

    loaded: list[BatchItem] = []
    seen: dict[str, str] = {}
    for position, (where, row) in enumerate(rows, start=1):
        if isinstance(row, str):
            row = {"prompt": row}
        try:
            item = row if isinstance(row, BatchItem) else BatchItem.model_validate(row)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'item'}: {e['msg']}" for e in exc.errors()
            )
            raise BatchItemsError(f"{where}: invalid batch item ({problems}).") from None
        updates: dict[str, Any] = {}
        if item.key is None:
            updates["key"] = default_key(position)
        if base is not None:
            updates["files"] = _rebase_files(item.files, base)
        if updates:
            item = item.model_copy(update=updates)
        key = str(item.key)
        if key in seen:
            raise BatchItemsError(f"{where}: key {key!r} is already used by {seen[key]}.")
        if roots is not None:
            for entry in item.files:
                entry_path = entry if isinstance(entry, str) else entry.path
                check_inside_roots(entry_path, roots, kind="input", what=f"input file of {where}")
        seen[key] = where
        loaded.append(item)
    return loaded


ItemState = Literal["completed", "failed", "not_started"]


class BatchItemResult(BaseModel):
    """What happened to one item of a batch."""

    key: str = Field(description="The item's key (also its output folder name).")
    state: ItemState = Field(description="completed, failed, or not_started (spend limit reached).")
    output_dir: str = Field(description="Folder of this item's output files.")
    metadata: dict[str, str] = Field(default_factory=dict, description="The item's metadata.")
    result: SessionResult | None = Field(default=None, description="The session result when completed.")
    error_type: str | None = Field(default=None, description="Exception class name when failed.")
    error: str | None = Field(default=None, description="Error message when failed.")
    session_id: str | None = Field(
        default=None, description="The session, when one was started and is known."
    )
    flow_run_id: str | None = Field(
        default=None, description="The item's Prefect flow run (item_runs='flow')."
    )
    task_run_id: str | None = Field(
        default=None, description="The item's Prefect task run in the batch's flow run (item_runs='task')."
    )
    cost_usd: Decimal | None = Field(default=None, description="List cost of the item's session, when known.")
    attempts: int = Field(default=0, description="Item runs used (more than 1 after a Prefect API outage).")


class BatchResult(BaseModel):
    """Results of ``run_agent_batch``: every item, in input order, plus totals."""

    items: list[BatchItemResult] = Field(description="One entry per input item, in order.")
    usage: UsageSummary = Field(description="Sum of the completed items' usage.")
    total_cost_usd: Decimal = Field(
        default=Decimal(0), description="Known cost of every started session, failed ones included."
    )
    spend_limit_usd: Decimal | None = Field(default=None, description="The ceiling the batch ran with.")
    spend_limit_reached: bool = Field(default=False, description="True when items were not started for it.")

    def _with(self, state: ItemState) -> list[BatchItemResult]:
        return [i for i in self.items if i.state == state]

    @property
    def completed(self) -> list[BatchItemResult]:
        """Items whose session completed."""
        return self._with("completed")

    @property
    def failed(self) -> list[BatchItemResult]:
        """Items that failed (their error is recorded)."""
        return self._with("failed")

    @property
    def not_started(self) -> list[BatchItemResult]:
        """Items never started because the spend limit was reached."""
        return self._with("not_started")

    def summary(self) -> str:
        """One line for the flow run's final state message: items by state, then the cost."""
        text = f"{len(self.items)} items: {len(self.completed)} completed, {len(self.failed)} failed"
        if self.not_started:
            text += f", {len(self.not_started)} not started (spend limit {self.spend_limit_usd} USD reached)"
        return f"{text}, {cost_text(UsageSummary(cost_usd=self.total_cost_usd))}"


def sum_usage(usages: Sequence[UsageSummary]) -> UsageSummary:
    """Add usages up; the cost is the sum of the known costs (None when none is known)."""
    costs = [u.cost_usd for u in usages if u.cost_usd is not None]
    return UsageSummary(
        input_tokens=sum(u.input_tokens for u in usages),
        output_tokens=sum(u.output_tokens for u in usages),
        cache_read_input_tokens=sum(u.cache_read_input_tokens for u in usages),
        cache_creation_input_tokens=sum(u.cache_creation_input_tokens for u in usages),
        active_seconds=sum(u.active_seconds for u in usages),
        cost_usd=sum(costs, Decimal(0)) if costs else None,
    )


class SpendLedger:
    """Decides whether another session may start under a spend ceiling, and with what budget.

    Spent = cost of finished sessions (recorded here) + current cost of the sessions still
    running (measured by the caller just before the decision). Once the ceiling is reached the
    ledger stays closed: no item starts after it, even if a later measurement is lower.

    With a per-session budget the ceiling is also held by the service: each session's budget is
    reserved here, and a new session gets at most what the ceiling leaves after the finished
    costs and the running sessions' budgets, so the sessions' budgets together never pass it.

    Args:
        limit_usd: The ceiling in USD, or None for no ceiling.
    """

    def __init__(self, limit_usd: Decimal | None) -> None:
        self.limit_usd = limit_usd
        self.finished_usd = Decimal(0)
        self.reserved: dict[str, Decimal] = {}
        self.closed = False

    def reserve(self, key: str, budget_usd: Decimal) -> Decimal | None:
        """The budget item ``key``'s session gets: ``budget_usd``, or less when the ceiling leaves
        less; None (and the ledger closes) when it leaves under a cent.

        Args:
            key: The item (its reservation is released by :meth:`record_finished`).
            budget_usd: The budget asked for.
        """
        if self.limit_usd is None:
            return budget_usd
        left = self.limit_usd - self.finished_usd - sum(self.reserved.values(), Decimal(0))
        budget = whole_cents(min(budget_usd, left))
        if budget < CENT:
            self.closed = True
            return None
        self.reserved[key] = budget
        return budget

    def record_finished(self, cost_usd: Decimal | None, key: str | None = None) -> None:
        """Add the final cost of a finished (completed or failed) session; release its budget."""
        if key is not None:
            self.reserved.pop(key, None)
        if cost_usd is not None:
            self.finished_usd += cost_usd

    def may_start(self, running_usd: Decimal) -> bool:
        """Return True when finished + running cost is still below the ceiling (and close it otherwise).

        Args:
            running_usd: Summed current cost of the sessions still running.
        """
        if self.limit_usd is None:
            return True
        if not self.closed and self.finished_usd + running_usd >= self.limit_usd:
            self.closed = True
        return not self.closed


class BatchFailedError(ManagedAgentsError):
    """Every item of the batch that started failed: the batch run fails with this error.

    Args:
        message: The batch's summary (``3 items: 0 completed, 3 failed``).
        result: The whole batch result: each item's error, session and cost.
    """

    def __init__(self, message: str, result: BatchResult) -> None:
        super().__init__(message)
        self.result = result

    def __reduce__(self) -> tuple[Any, ...]:  # Prefect persists a failed state's exception
        return type(self), (str(self), self.result)
