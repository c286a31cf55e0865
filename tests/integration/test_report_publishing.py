"""The session report decorates a run: when it cannot be published, the run's own outcome stands."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import httpx
import pytest
from prefect import flow

import tasks.reporting as reporting
from managed_agents_core.report import SessionReport
from managed_agents_core.transcript import Transcript

pytestmark = pytest.mark.usefixtures("prefect_harness")


async def test_a_report_that_cannot_be_published_is_logged_not_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Mocked: a Prefect API that refuses this one write while the run goes on cannot be made
    # on demand with the real test server.
    async def refused(**_: Any) -> UUID:
        request = httpx.Request("POST", "http://prefect/api/artifacts/")
        raise httpx.HTTPStatusError("503 Service Unavailable", request=request, response=httpx.Response(503))

    monkeypatch.setattr(reporting, "acreate_markdown_artifact", refused)
    report = SessionReport(
        agent_name="writer", session_id="sesn_1", console_url="u", headline="Failed", transcript=Transcript()
    )

    @flow
    async def publish() -> UUID | None:
        return await reporting.publish_session_report(report)

    assert await publish() is None
    assert "Could not publish the report of session sesn_1: 503 Service Unavailable" in caplog.text
