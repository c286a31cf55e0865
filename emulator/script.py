"""The scripted agent: what a session turn does, deterministically.

Without a test-mode prefix, every ``user.message`` (or ``user.define_outcome``) gets the
default behaviour: read the mounted input files, write a report of them as a session output
file, write a memory entry into every read-write memory store, and answer with a summary.

A message whose text starts with :data:`TEST_MODE_PREFIX` followed by a JSON object selects
scenarios instead (see ``emulator/SCENARIOS.md`` for every key and the emitted event order).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import mimetypes
import time
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import blobs, memory, threads
from .engine import SessionGone, TurnInterrupted
from .errors import ApiError
from .runtime import Emulator

if TYPE_CHECKING:
    from .engine import TurnContext

TEST_MODE_PREFIX = "#emulator"
"""Reserved prefix of a test-mode message: ``#emulator {"reply": "hi"}``."""


def scenario_prompt(**keys: Any) -> str:
    """The text of a test-mode message: what the scripted agent's turn does (``SCENARIOS.md``).

    Args:
        **keys: The scenario's keys, e.g. ``reply="Done."``, ``outputs=[{"name": "a.csv", "size": 10}]``.
    """
    return f"{TEST_MODE_PREFIX} {json.dumps(keys)}"


BUILTIN_TOOL_NAMES = ("bash", "read", "write", "edit", "glob", "grep", "web_fetch", "web_search")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OutputSpec(_Strict):
    """One generated output file."""

    name: str | None = Field(default=None, min_length=1, description="File name; output-<n>.bin when unset.")
    size: int = Field(ge=0, description="Size in bytes (generated on the fly, never held in memory).")
    seed: int = Field(default=0, description="Seed of the generated content.")
    mime_type: str | None = Field(default=None, description="MIME type; guessed from the name when unset.")


class ToolSpec(_Strict):
    """One built-in tool call."""

    name: Literal["bash", "read", "write", "edit", "glob", "grep", "web_fetch", "web_search"] = "bash"
    input: dict[str, Any] = Field(default_factory=dict)
    permission: Literal["always_allow", "always_ask"] | None = Field(
        default=None, description="Policy; taken from the agent's toolset config when unset."
    )
    result: str = Field(default="ok", description="Text of the agent.tool_result.")
    is_error: bool = False


class CustomToolSpec(_Strict):
    """One custom tool call (answered by the client with user.custom_tool_result)."""

    name: str = Field(min_length=1)
    input: dict[str, Any] = Field(default_factory=dict)


class StreamSpec(_Strict):
    """A long run of agent.message or agent.thinking events."""

    count: int = Field(ge=1, le=10_000_000)
    type: Literal["agent.message", "agent.thinking"] = "agent.message"
    delay: float | None = Field(default=None, ge=0, description="Seconds between them (default event_delay).")


class OutcomeSpec(_Strict):
    """How a user.define_outcome is graded."""

    iterations: int = Field(default=1, ge=1, le=20, description="Evaluations until the final result.")
    result: Literal["satisfied", "failed"] = "satisfied"


class DelegateSpec(_Strict):
    """One task the coordinator hands to an agent of its multiagent roster (a child thread)."""

    agent: str = Field(min_length=1, description="Roster agent: its name, its id, or self.")
    task: str = Field(min_length=1, description="The message the coordinator sends the thread.")
    reply: str | None = Field(default=None, description="The thread's answer (default Done: <task>).")
    outputs: list[OutputSpec] = Field(default_factory=list, description="Files the thread writes.")
    cost: int = Field(default=1, ge=0, description="List cost of the thread's model request, in US cents.")


class Scenario(_Strict):
    """The JSON object after ``#emulator``. Every key is optional and they compose."""

    reply: str | None = None
    thinking: bool = True
    report: bool = False
    memory: bool = False
    delay: float | None = Field(default=None, ge=0)
    start_race: float | None = Field(default=None, ge=0)
    retry: int = Field(default=0, ge=0, le=100)
    error_type: str = "model_overloaded_error"
    tools: list[ToolSpec] = Field(default_factory=list)
    custom_tools: list[CustomToolSpec] = Field(default_factory=list)
    outputs: list[OutputSpec] = Field(default_factory=list)
    stream: StreamSpec | None = None
    remember: str | None = None
    recall: bool = False
    stop: Literal["end_turn", "retries_exhausted", "budget_reached", "refusal", "terminated"] = "end_turn"
    refusal_category: (
        Literal["cyber", "bio", "frontier_llm", "reasoning_extraction", "general_harms"] | None
    ) = None
    outcome: OutcomeSpec | None = None
    cost: int = Field(default=1, ge=0, description="List cost of each model request, in US cents.")
    delegate: list[DelegateSpec] = Field(default_factory=list, max_length=25)


DEFAULT_SCENARIO = Scenario(report=True, memory=True)
"""What a plain message does."""


def parse_test_mode(text: str) -> Scenario | None:
    """Return the scenario of a test-mode text, ``None`` for ordinary text.

    Raises:
        ApiError: 400 when the text has the prefix but no valid scenario JSON.
    """
    stripped = text.lstrip()
    if not stripped.startswith(TEST_MODE_PREFIX):
        return None
    raw = stripped[len(TEST_MODE_PREFIX) :].strip() or "{}"
    try:
        data, _ = json.JSONDecoder().raw_decode(raw)
        return Scenario.model_validate(data)
    except (ValueError, ValidationError) as exc:
        raise ApiError(400, f"Invalid {TEST_MODE_PREFIX} scenario: {exc}") from exc


def check_scenario(emulator: Emulator, agent: dict[str, Any], event: dict[str, Any]) -> None:
    """Validate the scenario of a user event before it is accepted (at send time).

    Args:
        emulator: The emulator (to look the roster's agents up).
        agent: The session's agent snapshot.
        event: A ``user.message`` or ``user.define_outcome`` (other events pass).

    Raises:
        ApiError: 400 on an invalid scenario, or a ``delegate`` the agent's roster cannot serve.
    """
    if event["type"] not in ("user.message", "user.define_outcome"):
        return
    scenario = parse_test_mode(trigger_text(event))
    if scenario is not None and scenario.delegate:
        threads.callees(emulator, agent, [d.agent for d in scenario.delegate])


def trigger_text(event: dict[str, Any]) -> str:
    """The text a turn reacts to: a message's text blocks, or an outcome's description."""
    if event["type"] == "user.define_outcome":
        return str(event.get("description", ""))
    return "\n".join(b.get("text", "") for b in event.get("content", []) if b.get("type") == "text")


def scenario_of(event: dict[str, Any]) -> Scenario:
    """The scenario a user event selects (the default behaviour when not in test mode)."""
    return parse_test_mode(trigger_text(event)) or DEFAULT_SCENARIO


async def run_turn(ctx: TurnContext) -> None:
    """Run one turn for ``ctx.trigger`` (see SCENARIOS.md for the event order)."""
    scenario = scenario_of(ctx.trigger)
    if scenario is DEFAULT_SCENARIO:
        scenario = _default_delegations(ctx, scenario)
    state = _script_state(ctx)
    state["turns"] += 1
    turn = state["turns"]
    if scenario.remember is not None:
        state["notes"].append(scenario.remember)
    if scenario.delay is not None:
        ctx.delay = scenario.delay

    if scenario.start_race is not None:
        ctx.stale_idle()
        ctx.report_idle_for(scenario.start_race)
    ctx.running()
    if ctx.trigger["processed_at"] is None:
        ctx.engine.mark_processed(ctx.session_id, ctx.trigger)
    await ctx.pause()
    if scenario.start_race:
        await ctx.pause(scenario.start_race)

    if not await _retries(ctx, scenario):
        return
    try:
        if ctx.trigger["type"] == "user.define_outcome":
            await _outcome_turn(ctx, scenario, turn)
        else:
            await _work_turn(ctx, scenario, turn)
    except _TurnOver:
        return


def _default_delegations(ctx: TurnContext, scenario: Scenario) -> Scenario:
    """A coordinator's ordinary message is also handed, as it is, to each other agent it can call."""
    roster = threads.callable_agents(ctx.emulator, ctx.session["agent"]) or []
    others = [a for a in roster if a["id"] != ctx.session["agent"]["id"]]
    if not others:
        return scenario
    task = trigger_text(ctx.trigger) or "(no text)"
    return scenario.model_copy(update={"delegate": [DelegateSpec(agent=a["id"], task=task) for a in others]})


async def _retries(ctx: TurnContext, scenario: Scenario) -> bool:
    """Emit the scripted failures; return False when the turn ended there."""
    for attempt in range(scenario.retry):
        await _failed_request(ctx, scenario, "retrying", attempt + 1)
        ctx.rescheduled()
        await ctx.pause()
        ctx.running()
        await ctx.pause()
    if scenario.stop == "retries_exhausted":
        await _failed_request(ctx, scenario, "exhausted", scenario.retry + 1)
        ctx.idle({"type": "retries_exhausted"})
        return False
    if scenario.stop == "terminated":
        ctx.emit(
            "session.error",
            error={
                "type": "unknown_error",
                "message": "The session hit an unrecoverable error (scripted).",
                "retry_status": {"type": "terminal"},
            },
        )
        await ctx.pause()
        ctx.terminate()
        return False
    return True


async def _failed_request(ctx: TurnContext, scenario: Scenario, retry_status: str, attempt: int) -> None:
    ctx.model_request_start()
    await ctx.pause()
    ctx.model_request_end(0, 0, 0, is_error=True)
    ctx.emit(
        "session.error",
        error={
            "type": scenario.error_type,
            "message": f"Model request failed (scripted, attempt {attempt}).",
            "retry_status": {"type": retry_status},
        },
    )
    await ctx.pause()


async def _work_turn(ctx: TurnContext, scenario: Scenario, turn: int) -> None:
    if ctx.budget_spent():
        ctx.idle({"type": "budget_reached"})
        return
    prompt = trigger_text(ctx.trigger)
    ctx.model_request_start()
    await ctx.pause()
    if scenario.thinking:
        await ctx.think()
        await ctx.pause()
    await _long_stream(ctx, scenario)

    if scenario.stop in ("refusal", "budget_reached"):
        ctx.model_request_end(_tokens(prompt, 100), 10, scenario.cost)
        ctx.emit_usage()
        await ctx.pause()
        if scenario.stop == "refusal":
            details = {
                "type": "refusal",
                "category": scenario.refusal_category,
                "explanation": "The scripted model declined this request.",
            }
            ctx.idle({"type": "refusal"}, details)
        else:
            ctx.idle({"type": "budget_reached"})
        return

    notes = await _tool_calls(ctx, scenario, prompt)
    notes += await _delegations(ctx, scenario)
    written = await _write_outputs(ctx, scenario, turn, prompt)
    reply = _reply(ctx, scenario, turn, notes, written)
    await ctx.say(reply)
    await ctx.pause()
    ctx.model_request_end(_tokens(prompt, 200), _tokens(reply, 20), scenario.cost)
    ctx.emit_usage()
    await ctx.pause()
    ctx.idle({"type": "end_turn"})


async def _long_stream(ctx: TurnContext, scenario: Scenario) -> None:
    spec = scenario.stream
    if spec is None:
        return
    for index in range(1, spec.count + 1):
        if spec.type == "agent.message":
            ctx.emit("agent.message", content=[{"type": "text", "text": f"chunk {index}/{spec.count}"}])
        else:
            ctx.emit("agent.thinking")
        await ctx.pause(spec.delay)


async def _tool_calls(ctx: TurnContext, scenario: Scenario, prompt: str) -> list[str]:
    """Emit the tool calls; wait for confirmations/results when needed. Returns reply notes."""
    notes: list[str] = []
    waiting: list[str] = []
    asked: dict[str, ToolSpec] = {}
    custom: dict[str, CustomToolSpec] = {}
    for tool in scenario.tools:
        policy = tool.permission or _agent_policy(ctx.session["agent"], tool.name)
        permission = "allow" if policy == "always_allow" else "ask"
        use = ctx.emit(
            "agent.tool_use",
            name=tool.name,
            input=tool.input,
            evaluated_permission=permission,
            evaluation={"type": policy},
        )
        await ctx.pause()
        if permission == "allow":
            _tool_result(ctx, use["id"], tool)
            notes.append(f"{tool.name} ran: {tool.result}")
            await ctx.pause()
        else:
            ctx.expect(use["id"], "user.tool_confirmation")
            waiting.append(use["id"])
            asked[use["id"]] = tool
    for call in scenario.custom_tools:
        use = ctx.emit("agent.custom_tool_use", name=call.name, input=call.input)
        ctx.expect(use["id"], "user.custom_tool_result")
        waiting.append(use["id"])
        custom[use["id"]] = call
        await ctx.pause()
    if not waiting:
        return notes
    ctx.model_request_end(_tokens(prompt, 150), 40, scenario.cost)
    answers = await ctx.wait_for_answers(waiting)
    for event_id in waiting:
        answer = answers[event_id]
        if event_id in asked:
            tool = asked[event_id]
            if answer["result"] == "allow":
                _tool_result(ctx, event_id, tool)
                notes.append(f"{tool.name} ran: {tool.result}")
            else:
                notes.append(f"{tool.name} denied: {answer.get('deny_message') or 'no reason given'}")
        else:
            text = " ".join(_texts(answer.get("content") or []))
            label = "failed" if answer.get("is_error") else "returned"
            notes.append(f"{custom[event_id].name} {label}: {text}")
        await ctx.pause()
    if ctx.budget_spent():
        ctx.idle({"type": "budget_reached"})
        raise _TurnOver
    ctx.model_request_start()
    await ctx.pause()
    return notes


async def _delegations(ctx: TurnContext, scenario: Scenario) -> list[str]:
    """Run each ``delegate`` entry in order as a child thread; return reply notes."""
    if not scenario.delegate:
        return []
    callees = threads.callees(ctx.emulator, ctx.session["agent"], [d.agent for d in scenario.delegate])
    notes = []
    for spec, callee in zip(scenario.delegate, callees, strict=True):
        child = threads.ChildThread.start(ctx.engine, ctx.session, callee)
        reply = await _delegate(ctx, child, spec)
        notes.append(f"{child.name} said: {reply}")
    return notes


async def _delegate(ctx: TurnContext, child: threads.ChildThread, spec: DelegateSpec) -> str:
    """One child thread's work (SCENARIOS.md, Delegation); it goes idle even when interrupted."""
    reply = spec.reply if spec.reply is not None else f"Done: {spec.task}"
    await ctx.pause()
    child.send_task(spec.task)
    child.running()
    try:
        await ctx.pause()
        child.model_request_start()
        await ctx.pause()
        await _write_files(ctx, spec.outputs)
        child.say(reply)
        await ctx.pause()
        child.model_request_end(_tokens(spec.task, 200), _tokens(reply, 20), spec.cost)
        child.answer(reply)
        child.idle({"type": "end_turn"})
    except TurnInterrupted:
        child.stop({"type": ctx.emulator.config.interrupt_stop_reason})
        raise
    except SessionGone:
        raise
    except Exception:
        child.stop({"type": "retries_exhausted"})
        raise
    await ctx.pause()
    child.deliver(reply)
    await ctx.pause()
    return reply


class _TurnOver(Exception):
    """The turn ended early (already idle)."""


def _tool_result(ctx: TurnContext, tool_use_id: str, tool: ToolSpec) -> None:
    ctx.emit(
        "agent.tool_result",
        tool_use_id=tool_use_id,
        content=[{"type": "text", "text": tool.result}],
        is_error=tool.is_error,
    )


def _agent_policy(agent: dict[str, Any], tool_name: str) -> str:
    for tool in agent.get("tools", []):
        if tool.get("type") != "agent_toolset_20260401":
            continue
        for config in tool.get("configs", []):
            if config.get("name") == tool_name:
                return str(config["permission_policy"]["type"])
        return str(tool["default_config"]["permission_policy"]["type"])
    return "always_allow"


async def _outcome_turn(ctx: TurnContext, scenario: Scenario, turn: int) -> None:
    spec = scenario.outcome or OutcomeSpec()
    trigger = ctx.trigger
    max_iterations = int(trigger.get("max_iterations") or 3)
    outcome_id = trigger["outcome_id"]
    for iteration in range(min(spec.iterations, max_iterations)):
        ctx.outcome_running(outcome_id, trigger["description"])
        await _work_turn_body(ctx, scenario, turn, iteration)
        ctx.start_outcome(outcome_id, trigger["description"], iteration)
        await ctx.pause()
        ctx.outcome_ongoing()
        await ctx.pause()
        last = iteration == spec.iterations - 1
        result: str
        if last:
            result, explanation = spec.result, f"Graded {spec.result} (scripted)."
        elif iteration == max_iterations - 1:
            result, explanation = "max_iterations_reached", "Ran out of iterations (scripted)."
        else:
            result, explanation = "needs_revision", "Needs another pass (scripted)."
        ctx.end_outcome(result, explanation)
        await ctx.pause()
    ctx.emit_usage()
    await ctx.pause()
    ctx.idle({"type": "end_turn"})


async def _work_turn_body(ctx: TurnContext, scenario: Scenario, turn: int, iteration: int) -> None:
    prompt = trigger_text(ctx.trigger)
    ctx.model_request_start()
    await ctx.pause()
    if scenario.thinking:
        await ctx.think()
        await ctx.pause()
    # The first pass does the work: tool calls (custom ones included) and files, as in a turn.
    notes = await _tool_calls(ctx, scenario, prompt) if iteration == 0 else []
    notes += await _delegations(ctx, scenario) if iteration == 0 else []
    written = await _write_outputs(ctx, scenario, turn, prompt) if iteration == 0 else []
    reply = _reply(ctx, scenario, turn, [f"outcome iteration {iteration}", *notes], written)
    await ctx.say(reply)
    await ctx.pause()
    ctx.model_request_end(_tokens(prompt, 200), _tokens(reply, 20), scenario.cost)


def _reply(ctx: TurnContext, scenario: Scenario, turn: int, notes: list[str], written: list[str]) -> str:
    if scenario.reply is not None:
        parts = [scenario.reply]
    else:
        parts = [f"Turn {turn} done."]
        if written:
            parts.append("Wrote " + ", ".join(written) + ".")
    parts.extend(notes)
    if scenario.recall:
        parts.append("Remembered: " + ", ".join(_script_state(ctx)["notes"]) + ".")
    return " ".join(parts)


def _texts(blocks: Iterable[dict[str, Any]]) -> list[str]:
    return [str(b.get("text", "")) for b in blocks if b.get("type") == "text"]


def _tokens(text: str, base: int) -> int:
    return base + len(text) // 4


def _script_state(ctx: TurnContext) -> dict[str, Any]:
    """Per-session memory of the script across turns (persisted with the store)."""
    states: dict[str, Any] = ctx.emulator.store.extra.setdefault("script_state", {})
    state: dict[str, Any] = states.setdefault(ctx.session_id, {"turns": 0, "notes": []})
    return state


# -- files ---------------------------------------------------------------------------------


async def _write_outputs(ctx: TurnContext, scenario: Scenario, turn: int, prompt: str) -> list[str]:
    """Write the report (and memory entry) and the scripted output files; return their names."""
    written: list[str] = []
    config = ctx.emulator.config
    # With an indexing window, outputs stay unlisted until the turn's idle indexes them.
    pending = config.output_indexing_window > 0
    listable_after = None if pending else time.time() + config.output_listing_delay
    if scenario.report:
        report = await _input_report(ctx, turn, prompt)
        name = "report.md" if turn == 1 else f"report-turn-{turn}.md"
        meta = blobs.create_file(
            ctx.emulator,
            filename=name,
            mime_type="text/markdown",
            data=report.encode(),
            scope_session_id=ctx.session_id,
            listable_after=listable_after,
            indexing_pending=pending,
        )
        if pending:
            ctx.outputs.append(meta["id"])
        written.append(name)
        if scenario.memory:
            _write_memories(ctx, turn, report)
    written.extend(await _write_files(ctx, scenario.outputs))
    return written


async def _write_files(ctx: TurnContext, specs: list[OutputSpec]) -> list[str]:
    """Write generated session output files (indexed like every output of the turn)."""
    config = ctx.emulator.config
    pending = config.output_indexing_window > 0
    listable_after = None if pending else time.time() + config.output_listing_delay
    written: list[str] = []
    for index, spec in enumerate(specs, start=1):
        name = spec.name or f"output-{index}.bin"
        mime = spec.mime_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
        meta = blobs.create_file(
            ctx.emulator,
            filename=name,
            mime_type=mime,
            generated_size=spec.size,
            generated_seed=spec.seed,
            scope_session_id=ctx.session_id,
            listable_after=listable_after,
            indexing_pending=pending,
        )
        if pending:
            ctx.outputs.append(meta["id"])
        written.append(name)
        await ctx.pause()
    return written


def _write_memories(ctx: TurnContext, turn: int, report: str) -> None:
    resources = ctx.emulator.store.session_resources.get(ctx.session_id, [])
    for resource in resources:
        if resource["type"] == "memory_store" and resource.get("access", "read_write") == "read_write":
            memory.write_memory(
                ctx.emulator,
                resource["memory_store_id"],
                f"/sessions/{ctx.session_id}/turn-{turn}.md",
                report,
                actor={"type": "session_actor", "session_id": ctx.session_id},
            )


async def _input_report(ctx: TurnContext, turn: int, prompt: str) -> str:
    lines = [
        f"# Emulator report (turn {turn})",
        "",
        f"Session: {ctx.session_id}",
        f"Prompt: {prompt[:200]}",
        "",
        "| file | mount path | size (bytes) | lines | words | sha256 |",
        "|---|---|---|---|---|---|",
    ]
    count = 0
    for resource in ctx.emulator.store.session_resources.get(ctx.session_id, []):
        if resource["type"] != "file":
            continue
        meta = ctx.emulator.store.files.get(resource["file_id"])
        if meta is None:
            continue
        stats = await _file_stats(ctx, meta)
        count += 1
        lines.append(
            f"| {meta['filename']} | {resource['mount_path']} | {stats['size']} | {stats['lines']} "
            f"| {stats['words']} | {stats['sha256']} |"
        )
    lines += ["", f"Input files: {count}"]
    return "\n".join(lines) + "\n"


async def _file_stats(ctx: TurnContext, meta: dict[str, Any]) -> dict[str, Any]:
    counter = _ContentStats()
    chunks = blobs.iter_content(ctx.emulator, meta)
    if isinstance(chunks, AsyncIterator):
        async for chunk in chunks:
            counter.feed(chunk)
    else:
        await asyncio.to_thread(counter.feed_all, chunks)
    return counter.result()


class _ContentStats:
    """Streaming size, line, word and sha256 counts (words may span chunk boundaries)."""

    def __init__(self) -> None:
        self.size = 0
        self.lines = 0
        self.words = 0
        self.in_word = False
        self.digest = hashlib.sha256()

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self.lines += chunk.count(b"\n")
        self.digest.update(chunk)
        if not chunk:
            return
        words = len(chunk.split())
        if words and self.in_word and not chunk[:1].isspace():
            words -= 1
        self.words += words
        self.in_word = not chunk[-1:].isspace()

    def feed_all(self, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            self.feed(chunk)

    def result(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "lines": self.lines,
            "words": self.words,
            "sha256": self.digest.hexdigest(),
        }
