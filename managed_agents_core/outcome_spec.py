"""Outcomes (``user.define_outcome``): what "done" means, graded by the service against a rubric.

An outcome replaces the first ``user.message``: the session works, grades its work against the
rubric after each pass, and revises until the grade is ``satisfied``, ``failed`` or
``max_iterations`` runs out. The turn still ends with ``session.status_idle`` (``end_turn``).
"""

from __future__ import annotations

from typing import Any, Self

from anthropic.types.beta.sessions import BetaManagedAgentsUserDefineOutcomeEventParams
from anthropic.types.beta.sessions.beta_managed_agents_user_define_outcome_event_params import Rubric
from pydantic import BaseModel, Field, model_validator

from .results import OutcomeEvaluation


class OutcomeSpec(BaseModel):
    """An outcome to send with ``user.define_outcome`` instead of a prompt.

    Example:
        ```python
        OutcomeSpec(description="Write report.md", rubric="- has a title\\n- cites every input")
        ```
    """

    description: str = Field(min_length=1, description="What the agent must achieve.")
    rubric: str | None = Field(default=None, description="The grading rubric as text (markdown).")
    rubric_file_id: str | None = Field(
        default=None, description="Or: an uploaded file (file_...) that holds the rubric."
    )
    max_iterations: int | None = Field(
        default=None, ge=1, le=20, description="Most work passes before grading stops (service default 3)."
    )

    @model_validator(mode="after")
    def _one_rubric(self) -> Self:
        if (self.rubric is None) == (self.rubric_file_id is None):
            raise ValueError("give exactly one of rubric (text) or rubric_file_id.")
        return self

    def event(self) -> BetaManagedAgentsUserDefineOutcomeEventParams:
        """The ``user.define_outcome`` event param."""
        rubric: Rubric = (
            {"type": "text", "content": self.rubric}
            if self.rubric is not None
            else {"type": "file", "file_id": str(self.rubric_file_id)}
        )
        event: BetaManagedAgentsUserDefineOutcomeEventParams = {
            "type": "user.define_outcome",
            "description": self.description,
            "rubric": rubric,
        }
        if self.max_iterations is not None:
            event["max_iterations"] = self.max_iterations
        return event


def session_evaluations(session: Any) -> list[OutcomeEvaluation]:
    """The session's ``outcome_evaluations`` (its final grade per outcome) as typed records."""
    records: list[OutcomeEvaluation] = []
    for item in getattr(session, "outcome_evaluations", None) or []:
        records.append(
            OutcomeEvaluation(
                outcome_id=str(getattr(item, "outcome_id", "")),
                iteration=int(getattr(item, "iteration", 0) or 0),
                result=str(getattr(item, "result", "")),
                explanation=getattr(item, "explanation", None),
                description=getattr(item, "description", None),
            )
        )
    return records
