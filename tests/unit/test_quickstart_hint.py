"""The quickstart's closing hint points at the Prefect server the run used, or says how to keep one."""

from __future__ import annotations

from prefect.settings import PREFECT_API_URL, temporary_settings

from managed_agents.cli import prefect_ui_hint


def test_the_hint_names_the_ui_of_the_server_the_run_used() -> None:
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:4300/api"}):
        assert prefect_ui_hint().endswith("Prefect UI: http://127.0.0.1:4300/runs")


def test_without_a_server_the_hint_says_the_runs_are_gone_and_how_to_keep_them() -> None:
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        hint = prefect_ui_hint()
    assert "temporary Prefect server, gone now" in hint
    assert "export PREFECT_API_URL=http://127.0.0.1:4200/api" in hint and "PREFECT_UI_API_URL" in hint
