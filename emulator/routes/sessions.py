"""Sessions: create, retrieve, update, list, archive, delete (reference §6).

Decisions where the reference says UNKNOWN:

* A new session that references an archived agent, environment or memory store gets 400
  ``invalid_request_error`` (the environment case carries ``error_code: environment_archived``,
  which the SDK maps to ``BetaEnvironmentArchivedError``).
* Updating the agent of a running session is 400; so are archive and delete while running
  (and while ``config.post_idle_running`` still reports it running after an idle).
* ``budget`` update rejections are 400 with ``error_code`` ``budget_create_only`` /
  ``budget_not_raised``; any update of a terminated session is 400.
* The list takes ``limit`` 1..1000 (default 20).
* ``vault_ids`` at create must name vaults that exist and are not archived (404, 400).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from .. import agents, threads
from ..engine import SessionEngine, get_engine
from ..errors import ApiError, not_found
from ..ids import new_id, now_iso, parse_ts
from ..listing import parse_bound
from ..metadata import check_metadata, patch_metadata
from ..pagination import paginate
from ..runtime import Emulator, EmulatorDep
from ..script import check_scenario
from ..session_models import InitialEventParams, ResourceParams, event_dict
from ..session_resources import (
    MAX_MEMORY_STORES,
    mount_file,
    mount_memory_store,
    mount_repository,
    public_resource,
)
from ..usage import zero_usage
from .vaults import check_vaults_usable

router = APIRouter(prefix="/v1")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgentRef(_Body):
    """``{"type": "agent", "id", "version"?}``."""

    type: Literal["agent"]
    id: str
    version: int | None = Field(default=None, ge=1)


class AgentWithOverrides(_Body):
    """``{"type": "agent_with_overrides", "id", ...overrides}``."""

    type: Literal["agent_with_overrides"]
    id: str
    version: int | None = Field(default=None, ge=1)
    model: str | dict[str, Any] | None = None
    system: str | None = Field(default=None, max_length=100_000)
    tools: list[dict[str, Any]] | None = None
    mcp_servers: list[dict[str, Any]] | None = None
    skills: list[dict[str, Any]] | None = None


class Money(_Body):
    """``{"amount": "<minor units>", "currency": "USD"}``."""

    amount: str = Field(pattern=r"^\d+$")
    currency: Literal["USD"]


class Budget(_Body):
    """``{"type": "limit", "max_list_cost"}``."""

    type: Literal["limit"]
    max_list_cost: Money


class CreateSessionBody(_Body):
    """``POST /v1/sessions``."""

    agent: str | Annotated[AgentRef | AgentWithOverrides, Field(discriminator="type")]
    environment_id: str
    title: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    resources: list[ResourceParams] = Field(default_factory=list)
    vault_ids: list[str] = Field(default_factory=list)
    initial_events: list[InitialEventParams] = Field(default_factory=list, max_length=50)
    budget: Budget | None = None


class AgentUpdate(_Body):
    """``agent`` of a session update: only ``tools`` and ``mcp_servers``."""

    tools: list[dict[str, Any]] | None = None
    mcp_servers: list[dict[str, Any]] | None = None


class UpdateSessionBody(_Body):
    """``POST /v1/sessions/{id}``."""

    title: str | None = None
    metadata: dict[str, str | None] | None = None
    agent: AgentUpdate | None = None
    budget: Budget | None = None
    vault_ids: list[str] | None = None


def get_session(emulator: Emulator, session_id: str) -> dict[str, Any]:
    """Return the stored session or raise 404."""
    session = emulator.store.sessions.get(session_id)
    if session is None:
        raise not_found("session", session_id)
    return session


def public_session(emulator: Emulator, session: dict[str, Any]) -> dict[str, Any]:
    """Return the API body of a stored session."""
    body = {k: v for k, v in session.items() if not k.startswith("_")}
    body["status"] = get_engine(emulator).public_status(session)
    body["resources"] = [public_resource(r) for r in emulator.store.session_resources.get(session["id"], [])]
    ended = session.get("_ended_at")
    end = parse_ts(ended) if ended else datetime.now(UTC)
    stats = dict(session["stats"])
    stats["duration_seconds"] = round((end - parse_ts(session["created_at"])).total_seconds(), 3)
    body["stats"] = stats
    return body


def _resolve_agent(emulator: Emulator, ref: str | AgentRef | AgentWithOverrides) -> dict[str, Any]:
    agent_id = ref if isinstance(ref, str) else ref.id
    version = None if isinstance(ref, str) else ref.version
    snapshot = agents.get_agent_snapshot(emulator, agent_id, version)
    if agents.is_agent_archived(emulator, agent_id):
        raise ApiError(
            400, f"Agent {agent_id!r} is archived; archived agents cannot be used by new sessions."
        )
    agent: dict[str, Any] = {key: snapshot.get(key) for key in agents.SESSION_AGENT_KEYS}
    if isinstance(ref, AgentWithOverrides):
        sent = ref.model_fields_set
        if "model" in sent and ref.model is not None:
            agent["model"] = agents.resolve_model(ref.model)
        if "system" in sent:
            agent["system"] = ref.system
        if "tools" in sent and ref.tools is not None:
            agent["tools"] = agents.resolve_tools(ref.tools)
        if "skills" in sent and ref.skills is not None:
            agent["skills"] = agents.resolve_skills(ref.skills)
        if ("mcp_servers" in sent and ref.mcp_servers is not None) or "tools" in sent:
            servers: list[dict[str, Any]] = (
                ref.mcp_servers if ref.mcp_servers is not None else list(agent["mcp_servers"] or [])
            )
            agent["mcp_servers"] = agents.check_mcp_servers(servers, list(agent["tools"] or []))
    # The session carries the roster resolved into full agent definitions (SDK session shape).
    agent["multiagent"] = threads.session_multiagent(emulator, agent)
    return agent


def _check_environment(emulator: Emulator, environment_id: str) -> None:
    env = agents.get_environment(emulator, environment_id)
    if env.get("archived_at") is not None:
        raise ApiError(
            400,
            f"Environment {environment_id!r} is archived; new sessions cannot use it.",
            error_code="environment_archived",
        )


@router.post("/sessions")
async def create_session(body: CreateSessionBody, emulator: EmulatorDep) -> dict[str, Any]:
    """Create a session (idle, zero usage) with its resources mounted."""
    agent = _resolve_agent(emulator, body.agent)
    initial_events = [event_dict(e) for e in body.initial_events]
    for event in initial_events:
        check_scenario(emulator, agent, event)
    _check_environment(emulator, body.environment_id)
    check_vaults_usable(emulator, body.vault_ids)
    metadata = check_metadata(body.metadata)
    memory_params = [r for r in body.resources if r.type == "memory_store"]
    if len(memory_params) > MAX_MEMORY_STORES:
        raise ApiError(400, f"A session may attach at most {MAX_MEMORY_STORES} memory stores.")
    session_id = new_id("sesn")
    resources: list[dict[str, Any]] = []
    for params in body.resources:
        if params.type == "memory_store":
            resources.append(mount_memory_store(emulator, params))
        elif params.type == "github_repository":
            resources.append(mount_repository(params))
    # Files last: their session copies are only made once every other check passed.
    for params in body.resources:
        if params.type == "file":
            resources.append(mount_file(emulator, session_id, params))
    stamp = now_iso()
    session: dict[str, Any] = {
        "type": "session",
        "id": session_id,
        "title": body.title,
        "status": "idle",
        "environment_id": body.environment_id,
        "agent": agent,
        "vault_ids": list(body.vault_ids),
        "metadata": metadata,
        "budget": body.budget.model_dump() if body.budget else None,
        "deployment_id": None,
        "outcome_evaluations": [],
        "stats": {"active_seconds": 0.0, "duration_seconds": 0.0},
        "usage": zero_usage(),
        "created_at": stamp,
        "updated_at": stamp,
        "archived_at": None,
    }
    emulator.store.sessions[session_id] = session
    emulator.store.session_resources[session_id] = resources
    emulator.store.events[session_id] = []
    engine = get_engine(emulator)
    threads.session_threads(engine, session)
    if initial_events:
        engine.accept(session, initial_events)
    engine.mark_dirty()
    return public_session(emulator, session)


@router.get("/sessions/{session_id}")
async def retrieve_session(session_id: str, emulator: EmulatorDep) -> dict[str, Any]:
    """Return one session."""
    return public_session(emulator, get_session(emulator, session_id))


@router.post("/sessions/{session_id}")
async def update_session(session_id: str, body: UpdateSessionBody, emulator: EmulatorDep) -> dict[str, Any]:
    """Update title, metadata (patch), agent tools/MCP servers, or budget; emit session.updated."""
    session = get_session(emulator, session_id)
    engine = get_engine(emulator)
    sent = body.model_fields_set
    if session["status"] == "terminated":
        raise ApiError(400, f"Session {session_id!r} is terminated and cannot be updated.")
    if "vault_ids" in sent:
        raise ApiError(
            400, "Updating vault_ids is not yet supported; requests setting this field are rejected."
        )
    changes: dict[str, Any] = {}
    if "agent" in sent and body.agent is not None:
        if engine.is_active(session):
            raise ApiError(400, "The session's agent cannot be updated while the session is running.")
        agent = dict(session["agent"])
        agent_sent = body.agent.model_fields_set
        if "tools" in agent_sent and body.agent.tools is not None:
            agent["tools"] = agents.resolve_tools(body.agent.tools)
        if "mcp_servers" in agent_sent and body.agent.mcp_servers is not None:
            agent["mcp_servers"] = body.agent.mcp_servers
        agent["mcp_servers"] = agents.check_mcp_servers(agent["mcp_servers"], agent["tools"])
        changes["agent"] = agent
    if "budget" in sent:
        changes["budget"] = _updated_budget(session, body.budget)
    if "metadata" in sent and body.metadata is not None:
        changes["metadata"] = patch_metadata(session["metadata"], body.metadata)
    if "title" in sent:
        changes["title"] = body.title
    for key, value in changes.items():
        session[key] = value
    if "budget" in changes and changes["budget"] is None:
        session["_budget_removed"] = True
    if changes:
        session["updated_at"] = now_iso()
        engine.emit(session_id, {"type": "session.updated", "id": new_id("sevt"), **changes})
    engine.mark_dirty()
    return public_session(emulator, session)


def _updated_budget(session: dict[str, Any], budget: Budget | None) -> dict[str, Any] | None:
    if budget is None:
        return None
    if session.get("budget") is None:
        raise ApiError(
            400,
            "A budget can only be set at session creation (and not re-added once removed).",
            error_code="budget_create_only",
        )
    spent = int((session["usage"].get("list_cost") or {"amount": "0"})["amount"])
    if int(budget.max_list_cost.amount) <= spent:
        raise ApiError(
            400,
            f"max_list_cost must be above the {spent} already spent.",
            error_code="budget_not_raised",
        )
    return budget.model_dump()


@router.get("/sessions")
async def list_sessions(
    request: Request,
    emulator: EmulatorDep,
    agent_id: str | None = None,
    agent_version: int | None = None,
    deployment_id: str | None = None,
    include_archived: bool = False,
    limit: int | None = None,
    memory_store_id: str | None = None,
    order: Literal["asc", "desc"] = "desc",
    page: str | None = None,
    statuses: Annotated[list[str] | None, Query(alias="statuses[]")] = None,
) -> dict[str, Any]:
    """List sessions, newest first by default, with the SDK's filters."""
    bounds = {
        op: parse_bound(request.query_params.get(f"created_at[{op}]")) for op in ("gt", "gte", "lt", "lte")
    }
    engine = get_engine(emulator)
    wanted = set(statuses or [])
    bad = wanted - {"idle", "running", "rescheduling", "terminated"}
    if bad:
        raise ApiError(400, f"statuses: unknown status {sorted(bad)}.")
    items = []
    for session in emulator.store.sessions.values():
        if not include_archived and session.get("archived_at") is not None:
            continue
        if agent_id is not None and session["agent"]["id"] != agent_id:
            continue
        if (
            agent_id is not None
            and agent_version is not None
            and session["agent"]["version"] != agent_version
        ):
            continue
        if deployment_id is not None and session.get("deployment_id") != deployment_id:
            continue
        if wanted and engine.public_status(session) not in wanted:
            continue
        if memory_store_id is not None and not any(
            r.get("memory_store_id") == memory_store_id
            for r in emulator.store.session_resources.get(session["id"], [])
        ):
            continue
        if not _in_range(parse_ts(session["created_at"]), bounds):
            continue
        items.append(session)
    items.sort(key=lambda s: s["created_at"], reverse=order == "desc")
    result = paginate(items, limit=limit, page=page, order=order, max_limit=1000, prev_page=True)
    result["data"] = [public_session(emulator, s) for s in result["data"]]
    return result


def _in_range(moment: datetime, bounds: dict[str, datetime | None]) -> bool:
    gt, gte, lt, lte = bounds["gt"], bounds["gte"], bounds["lt"], bounds["lte"]
    return (
        (gt is None or moment > gt)
        and (gte is None or moment >= gte)
        and (lt is None or moment < lt)
        and (lte is None or moment <= lte)
    )


def _refuse_while_running(engine: SessionEngine, session: dict[str, Any], action: str) -> None:
    # Also during a post-idle race (config.post_idle_running), exactly as if still running.
    if engine.reports_running(session):
        raise ApiError(
            400, f"Cannot {action} session {session['id']!r} while it is running; interrupt it first."
        )


@router.post("/sessions/{session_id}/archive")
async def archive_session(session_id: str, emulator: EmulatorDep) -> dict[str, Any]:
    """Archive a session (read-only from now on); refused while running."""
    session = get_session(emulator, session_id)
    engine = get_engine(emulator)
    _refuse_while_running(engine, session, "archive")
    if session.get("archived_at") is None:
        session["archived_at"] = session["updated_at"] = now_iso()
        engine.mark_dirty()
    return public_session(emulator, session)


@router.delete("/sessions/{session_id}")
async def delete_session(session_id: str, emulator: EmulatorDep) -> dict[str, Any]:
    """Delete a session and its history; refused while running."""
    session = get_session(emulator, session_id)
    engine = get_engine(emulator)
    _refuse_while_running(engine, session, "delete")
    engine.forget(session_id)
    threads.forget(engine, session_id)
    del emulator.store.sessions[session_id]
    emulator.store.events.pop(session_id, None)
    emulator.store.session_resources.pop(session_id, None)
    emulator.store.extra.get("script_state", {}).pop(session_id, None)
    engine.mark_dirty()
    return {"id": session_id, "type": "session_deleted"}


def install(app: FastAPI, emulator: Emulator) -> None:
    """Register the session routes and the session engine service."""
    get_engine(emulator)
    app.include_router(router)
