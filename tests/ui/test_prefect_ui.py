"""What a person sees in the Prefect UI, checked in headless Chromium (``pytest -m ui``).

A ``prefect server start`` with its UI, the emulator, and the runs of ``tests/ui/scenario.py``
(deploy, a session with outputs, a batch, a session paused for approval) made in child
processes as a user would. Then each page is opened as a person would open it and checked on
what it shows: the run page (its name, session tag, the final log line with the cost, the
state message with the cost on the Details tab; the same message on the batch's), the session
report (its sections, links that resolve, no literal backticks), the agent block (its
credentials as a block of their own), the events (the session's completed event with its
agent), and the paused run's Resume form (one allow/deny and one message per call, nothing
to add, no ``None`` toggle). The API key is on no page. Screenshots are saved under pytest's
temporary folder and named in the report's "screenshots" section.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from emulator import EmulatorProcess
from managed_agents_core.report import report_key
from tests.postgres import suite_database_url
from tests.prefect_server import PROJECT_ROOT, PrefectServerProcess, stop_process_group
from tests.ui.browser import Browser, chromium_path
from tests.ui.scenario import BLOCK

pytestmark = [
    pytest.mark.ui,
    pytest.mark.timeout(900),
    # Skipped only on a machine without Chromium; .ci/run installs it and sets PMA_REQUIRE_UI_TESTS.
    pytest.mark.skipif(
        chromium_path() is None and not os.environ.get("PMA_REQUIRE_UI_TESTS"),
        reason="chromium is not installed (apt-get install chromium)",
    ),
]

API_KEY = "sk-ant-ui-test-4c6f1e-SECRET"


@dataclass
class Scene:
    """The server, what the scenario made, and where screenshots go."""

    server: PrefectServerProcess
    ids: dict[str, Any]
    paused: subprocess.Popen[bytes]
    shots: Path

    def api(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """A Prefect API call (POST with a body, else GET)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.server.api_url}{path}", data=data, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def event(self, name: str, resource_id: str, within: float = 60.0) -> dict[str, Any]:
        """The first event ``name`` about ``resource_id`` (waited for: events persist late)."""
        deadline = time.monotonic() + within
        while True:
            found = self.api(
                "/events/filter",
                {"filter": {"event": {"name": [name]}, "resource": {"id": [resource_id]}}, "limit": 5},
            )["events"]
            if found:
                return dict(found[0])
            assert time.monotonic() < deadline, f"no {name} about {resource_id}"
            time.sleep(0.5)  # polled with a deadline


@pytest.fixture(scope="module")  # once: pytest-xdist keeps tests/ui on one worker (tests/conftest.py)
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    work = tmp_path_factory.mktemp("ui")
    server = PrefectServerProcess(ui=True, log_path=work / "prefect.log", database_url=suite_database_url())
    server.start()
    try:
        with EmulatorProcess(["--api-key", API_KEY], log_path=work / "emulator.log") as emulator:
            env = {
                **server.env,
                "PYTHONPATH": str(PROJECT_ROOT),
                "UI_TEST_BASE_URL": emulator.url,
                "UI_TEST_API_KEY": API_KEY,
                "UI_TEST_OUTPUTS": str(work / "outputs"),
                "MANAGED_AGENTS_OUTPUT_ROOTS": json.dumps([str(work)]),
            }
            made = subprocess.run(
                [sys.executable, "-m", "tests.ui.scenario", "runs"],
                cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            assert made.returncode == 0, made.stdout[-4000:] + made.stderr[-8000:]
            ids = json.loads(made.stdout.strip().splitlines()[-1])
            paused = subprocess.Popen(
                [sys.executable, "-m", "tests.ui.scenario", "paused"],
                cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
            shots = work / "screenshots"
            shots.mkdir()
            try:
                yield Scene(server, ids, paused, shots)
            finally:
                stop_process_group(paused)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser() as b:
        yield b


def look(browser: Browser, scene: Scene, name: str, record_property: Any) -> str:
    """Screenshot the page, name the file in the test report, and check the key is not on it."""
    path = browser.screenshot(scene.shots / f"{name}.png")
    record_property("screenshots", f"{name}: {path}")
    html = browser.html()
    assert API_KEY not in html and API_KEY not in browser.text(), f"the API key is on the {name} page"
    return html


def test_the_run_page_shows_the_name_the_session_tag_and_the_cost(
    scene: Scene, browser: Browser, record_property: Any
) -> None:
    session_id = scene.ids["session_id"]
    text = browser.open(
        f"{scene.server.ui_url}/runs/flow-run/{scene.ids['session_run_id']}",
        f"session:{session_id}",
        f"{BLOCK}: #emulator",  # the run's name: its agent, then its prompt
        f"Session {session_id} completed: idle (end_turn), 2 output file(s)",
        "list cost $",
    )
    assert "`" not in text
    look(browser, scene, "run", record_property)
    # The Details tab shows the state message: how the session ended and what it cost.
    browser.open(
        f"{scene.server.ui_url}/runs/flow-run/{scene.ids['session_run_id']}?tab=Details",
        "State Message",
        "idle (end_turn), 2 output file(s)",
        "events, list cost $",
    )
    look(browser, scene, "run-details", record_property)


def test_the_session_report_has_its_sections_and_working_links(
    scene: Scene, browser: Browser, record_property: Any
) -> None:
    [artifact] = scene.api(
        "/artifacts/filter",
        {
            "artifacts": {
                "flow_run_id": {"any_": [scene.ids["session_run_id"]]},
                "type": {"any_": ["markdown"]},
            }
        },
    )
    assert artifact["key"] == report_key("ui-report-writer")
    text = browser.open(
        f"{scene.server.ui_url}/artifacts/artifact/{artifact['id']}",
        "ui-report-writer: Completed",
        "Usage",
        "Output files",
        "summary.md",
        "by-region.csv",
        "Transcript",
    )
    assert "`" not in text, "literal backticks on the report page"
    look(browser, scene, "report", record_property)
    # Every link the report's markdown holds is rendered as a working link (an absolute URL,
    # not markdown left as text); the one to the session goes to the Claude Console.
    written = re.findall(r"\]\((\S+?)\)", str(artifact["data"]))
    assert written and all(url.startswith(("https://", "http://")) for url in written), written
    rendered = browser.links()
    assert all(url in rendered for url in written), (written, rendered)
    assert any(scene.ids["session_id"] in url for url in written)
    # The report fits a laptop screen: nothing scrolls sideways.
    assert browser.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_a_coordinators_report_shows_which_agent_did_what(
    scene: Scene, browser: Browser, record_property: Any
) -> None:
    [artifact] = scene.api(
        "/artifacts/filter",
        {"artifacts": {"flow_run_id": {"any_": [scene.ids["team_run_id"]]}, "type": {"any_": ["markdown"]}}},
    )
    text = browser.open(
        f"{scene.server.ui_url}/artifacts/artifact/{artifact['id']}",
        "ui-research-lead: Completed",
        "Agents",
        "coordinator",
        "ui-researcher",
        "1 task, 1 reply",
        "customers.csv",
    )
    assert "`" not in text, "literal backticks on the report page"
    assert browser.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    look(browser, scene, "team-report", record_property)
    browser.evaluate("(d => { d.open = true; d.scrollIntoView(); })(document.querySelector('details'))")
    assert "Delegated: to ui-researcher: Find the three largest customers by revenue." in browser.text()
    assert "Reply: from ui-researcher: ACME, Globex and Initech." in browser.text()
    look(browser, scene, "team-transcript", record_property)


def test_the_agent_block_shows_its_credentials_as_a_block_of_their_own_and_its_vaults(
    scene: Scene, browser: Browser, record_property: Any
) -> None:
    text = browser.open(
        f"{scene.server.ui_url}/blocks/block/{scene.ids['block_document_id']}",
        BLOCK,
        f"{BLOCK}-credentials",
        "Vault IDs",
        scene.ids["vault_id"],
    )
    assert "None" not in text.split(f"{BLOCK}-credentials")[0].splitlines()[-1]
    look(browser, scene, "block", record_property)


def test_the_batch_run_and_the_session_events_are_there(
    scene: Scene, browser: Browser, record_property: Any
) -> None:
    browser.open(
        f"{scene.server.ui_url}/runs/flow-run/{scene.ids['batch_run_id']}", "2 items: 2 completed, 0 failed"
    )
    look(browser, scene, "batch", record_property)
    browser.open(
        f"{scene.server.ui_url}/runs/flow-run/{scene.ids['batch_run_id']}?tab=Details",
        "State Message",
        "2 items: 2 completed, 0 failed, list cost $",
    )
    look(browser, scene, "batch-details", record_property)
    # The batch report links each item's run (which opens) and its session.
    [report] = scene.api(
        "/artifacts/filter",
        {
            "artifacts": {
                "flow_run_id": {"any_": [scene.ids["batch_run_id"]]},
                "key": {"any_": ["managed-agents-batch"]},
            }
        },
    )
    browser.open(
        f"{scene.server.ui_url}/artifacts/artifact/{report['id']}", "Batch: 2 items", "north", "south"
    )
    look(browser, scene, "batch-report", record_property)
    item_links = [url for url in browser.links() if url.startswith(f"{scene.server.ui_url}/runs/task-run/")]
    assert len(set(item_links)) == 2, browser.links()
    assert sum("sesn_" in url for url in browser.links()) >= 2
    browser.open(item_links[0], "item-")
    # Each event's page: the batch's totals, and the session's with its agent and block related.
    for name, resource, shot in (
        (
            "managed-agents.batch.completed",
            f"managed-agents.batch.{scene.ids['batch_run_id']}",
            "event-batch",
        ),
        (
            "managed-agents.session.completed",
            f"managed-agents.session.{scene.ids['session_id']}",
            "event-session",
        ),
    ):
        event = scene.event(name, resource)
        text = browser.open(
            f"{scene.server.ui_url}/events/event/{event['occurred'][:10]}/{event['id']}",
            name,
            "ui-report-writer",
        )
        look(browser, scene, shot, record_property)
        if shot == "event-session":
            assert BLOCK in text, "the agent's block is not among the event's related resources"


def test_the_resume_form_asks_only_for_decisions(
    scene: Scene, browser: Browser, record_property: Any
) -> None:
    deadline = time.monotonic() + 180
    runs: list[dict[str, Any]] = []
    while not runs:
        assert scene.paused.poll() is None, "the paused scenario ended"
        assert time.monotonic() < deadline, "no run paused for approval"
        runs = [
            r
            for r in scene.api("/flow_runs/filter", {"flow_runs": {"state": {"type": {"any_": ["PAUSED"]}}}})
            if r["state"]["state_details"].get("run_input_keyset")
        ]
        time.sleep(0.5)  # polled with a deadline
    run_url = f"{scene.server.ui_url}/runs/flow-run/{runs[0]['id']}"
    # The log says until when it waits, on which call, and what happens without an answer.
    text = browser.open(run_url, "Paused", "Resume", "Waiting until", "UTC (600 s)", "(then deny)")
    assert 'bash {"command": "rm -rf /data/tmp"} (always_ask)' in text
    look(browser, scene, "paused", record_property)
    browser.click("Resume")
    # The form's description (its heading and table) can render after its fields: wait for both.
    text = browser.wait_for_text(
        "waits for 1 tool confirmation", "1. bash", "1. Message if denied", "rm -rf /data/tmp", "always_ask"
    )
    look(browser, scene, "resume-form", record_property)
    assert "Add item" not in text and "Property is type None" not in text and "keep as is" not in text
    assert "1. bash (Optional)" not in text and "1. Message if denied (Optional)" in text
    heading = next(line for line in text.splitlines() if "waits for 1 tool confirmation" in line)
    assert "`" not in heading
