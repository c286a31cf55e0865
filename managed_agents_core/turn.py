"""What a turn is asked to do: how it starts, how its tool calls are answered, how long it may take.

:class:`TurnRequest` is built once by whoever starts the turn and handed unchanged through every
layer (the pipeline, the Prefect task, :func:`~managed_agents_core.lifecycle.adrive_session`,
the :class:`~managed_agents_core.session_stream.SessionStream` engine), so an option is declared
and documented here only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from .events import EventParam
from .tool_calls import PendingToolCall

Verdict = Literal["allow", "deny", "fail", "ask"]


class ConfirmationPolicy(BaseModel):
    """How to answer tool calls that wait for a confirmation (``requires_action``).

    ``ask`` hands the decision to a person: the engine stops and returns the pending calls, and
    the runtime flow pauses (or suspends) with a form in the Prefect UI. Custom tool calls
    (``agent.custom_tool_use``) are answered by the registered Python functions, not by this
    policy; without a handler for them the run fails.
    """

    default: Verdict = Field(
        default="fail",
        description="Answer for tools not listed below: allow, deny, ask a person in the Prefect UI, or fail.",
    )
    allow_tools: list[str] = Field(default_factory=list, description="Tool names that are always allowed.")
    deny_tools: list[str] = Field(default_factory=list, description="Tool names that are always denied.")
    ask_tools: list[str] = Field(
        default_factory=list, description="Tool names a person approves or denies in the Prefect UI."
    )
    deny_message: str | None = Field(
        default="Denied by the Prefect confirmation policy.",
        description="Message passed to the model with a denial.",
    )
    approval_timeout_seconds: int = Field(
        default=3600, gt=0, description="How long to wait for a person's answer before on_timeout applies."
    )
    on_timeout: Literal["deny", "fail"] = Field(
        default="deny",
        description="What happens when nobody answers in time: deny the calls, or fail the run.",
    )
    approval_mode: Literal["auto", "pause", "suspend"] = Field(
        default="auto",
        description="pause keeps the process waiting; suspend releases the worker (deployments only); "
        "auto suspends deployment runs and pauses the others.",
    )

    def asks(self) -> bool:
        """True when some tool call may be handed to a person."""
        return self.default == "ask" or any(self.decide(tool) == "ask" for tool in self.ask_tools)

    def decide(self, tool_name: str) -> Verdict:
        """Return the answer for one tool call by name (deny wins over allow, allow over ask)."""
        if tool_name in self.deny_tools:
            return "deny"
        if tool_name in self.allow_tools:
            return "allow"
        if tool_name in self.ask_tools:
            return "ask"
        return self.default


class CustomToolDispatcher(Protocol):
    """Runs ``agent.custom_tool_use`` calls and returns one ``user.custom_tool_result`` each."""

    async def __call__(self, calls: Sequence[PendingToolCall]) -> list[EventParam]:
        """Run the calls (concurrently) and return their result event params, one per call."""


SendTurn = Callable[[], Awaitable[Sequence[str]]]
"""Sends the events that start a follow-up turn (once, however often it is called, e.g. a
cached task) and returns their server ids."""


@dataclass(frozen=True)
class TurnRequest:
    """One turn's options. Exactly one way to start the turn: ``kickoff``, ``turn_event_ids``
    or ``send_turn``.

    Args:
        kickoff: Events to send once the stream is open (``user.message`` or
            ``user.define_outcome``). With ``resume`` they are sent only if the history shows no
            user message yet.
        resume: Re-attach to a session this run started before (a retry, a later stretch of the
            same turn after an approval): the history decides whether the kickoff went out.
        turn_event_ids: Ids of user events the caller already sent to start the turn (a
            follow-up): the turn ends at the first idle after them; nothing is sent.
        send_turn: Sends a follow-up turn's events once the stream is open and returns their ids,
            so the turn's end is seen on the stream at once.
        policy: How tool confirmations are answered (default: fail).
        custom_tools: Runs ``agent.custom_tool_use`` calls; without it such calls end the run.
        max_duration: Wall-clock seconds after which the session is interrupted (``timeout``).

    Raises:
        ValueError: More than one way to start the turn was given.
    """

    kickoff: tuple[EventParam, ...] = ()
    resume: bool = False
    turn_event_ids: tuple[str, ...] = ()
    send_turn: SendTurn | None = None
    policy: ConfirmationPolicy | None = None
    custom_tools: CustomToolDispatcher | None = None
    max_duration: float | None = None

    def __post_init__(self) -> None:
        # Frozen, so lists given by callers become tuples here.
        object.__setattr__(self, "kickoff", tuple(self.kickoff))
        object.__setattr__(self, "turn_event_ids", tuple(str(i) for i in self.turn_event_ids))
        starts = sum((bool(self.kickoff), bool(self.turn_event_ids), self.send_turn is not None))
        if starts > 1:
            raise ValueError("start a turn with kickoff events, turn_event_ids or send_turn: one of them")

    @property
    def is_follow_up(self) -> bool:
        """True when the turn follows earlier turns of the session (earlier idles do not end it)."""
        return bool(self.turn_event_ids) or self.send_turn is not None

    def resumed(self) -> TurnRequest:
        """The same turn, streamed again: a first turn's kickoff may already be in the history."""
        return self if self.is_follow_up else dataclasses.replace(self, resume=True)
