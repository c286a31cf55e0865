"""Headless Chromium driven through its DevTools protocol: open a page, wait until it shows
something, read what a person sees, click, and save a screenshot.

Debian's ``chromium`` (``.ci/run`` installs it when missing). The protocol is spoken over one
WebSocket with the ``websockets`` client Prefect already depends on.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from websockets.sync.client import ClientConnection, connect

from tests.prefect_server import stop_process_group

CHROMIUM = "chromium"


def chromium_path() -> str | None:
    """The Chromium binary on PATH, or None."""
    return shutil.which(CHROMIUM)


class Browser:
    """One headless Chromium with one tab.

    Args:
        width: Window width in CSS pixels (a laptop screen by default).
        height: Window height.
    """

    def __init__(self, width: int = 1366, height: int = 900) -> None:
        self.width, self.height = width, height
        self._profile = tempfile.mkdtemp(prefix="pma-chromium-")
        self._ids = itertools.count(1)
        self._proc: subprocess.Popen[str] | None = None
        self._ws: ClientConnection | None = None
        self._session = ""

    def __enter__(self) -> Browser:
        binary = chromium_path()
        assert binary, "chromium is not installed (apt-get install chromium)"
        self._proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--hide-scrollbars", "--no-first-run", "--remote-debugging-port=0",
             # No calls home: this machine's network is closed, and they fail at every start.
             "--disable-quic", "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={self._profile}", f"--window-size={self.width},{self.height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "TZ": "UTC"},  # dates in UI routes (an event's page) are the browser's
            start_new_session=True,  # its own process group: its renderers are stopped with it
        )  # fmt: skip
        assert self._proc.stderr is not None
        url = ""
        deadline = time.monotonic() + 60
        while not url and time.monotonic() < deadline:
            line = self._proc.stderr.readline()
            if match := re.search(r"DevTools listening on (ws://\S+)", line):
                url = match.group(1)
            elif not line and self._proc.poll() is not None:
                break
        assert url, "chromium did not open its DevTools endpoint"
        self._ws = connect(url, max_size=64 * 1024 * 1024, open_timeout=30)
        target = self._call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self._call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self._call("Page.enable", session=True)
        self._call("Runtime.enable", session=True)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._ws is not None:
            self._ws.close()
        if self._proc is not None:
            # The whole group: after a kill of the browser process alone, its profile folder was
            # at times left behind, written again (it seems) by a child that outlived it.
            stop_process_group(self._proc, grace=5)
            if self._proc.stderr:
                self._proc.stderr.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def _call(self, method: str, *, session: bool = False, **params: Any) -> dict[str, Any]:
        assert self._ws is not None
        call_id = next(self._ids)
        message: dict[str, Any] = {"id": call_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        self._ws.send(json.dumps(message))
        while True:
            answer = json.loads(self._ws.recv(timeout=60))
            if answer.get("id") == call_id:
                assert "error" not in answer, f"{method}: {answer['error']}"
                return dict(answer.get("result", {}))

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited)."""
        result = self._call(
            "Runtime.evaluate", session=True, expression=expression, returnByValue=True, awaitPromise=True
        )
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def text(self) -> str:
        """What the page shows as text (``innerText`` of the body)."""
        return str(self.evaluate("document.body ? document.body.innerText : ''"))

    def html(self) -> str:
        """The page's current DOM as HTML."""
        return str(self.evaluate("document.documentElement.outerHTML"))

    def wait_for_text(self, *needles: str, within: float = 60.0) -> str:
        """Wait until the page's text holds every needle; return the text."""
        deadline = time.monotonic() + within
        shown = ""
        while time.monotonic() < deadline:
            shown = self.text()
            if all(n in shown for n in needles):
                return shown
            time.sleep(0.3)  # polled with a deadline: the UI fetches and renders asynchronously
        missing = [n for n in needles if n not in shown]
        raise AssertionError(f"the page never showed {missing}; it shows:\n{shown[:3000]}")

    def open(self, url: str, *needles: str, within: float = 60.0) -> str:
        """Navigate to ``url`` and wait until its text holds every needle; return the text."""
        self._call("Page.navigate", session=True, url=url)
        return self.wait_for_text(*needles, within=within)

    def click(self, label: str) -> None:
        """Click the first button (or link) whose visible text is ``label``."""
        clicked = self.evaluate(
            "(() => { const label = " + json.dumps(label) + ";"
            " const hit = [...document.querySelectorAll('button, a, [role=button]')]"
            "   .find(e => e.innerText && e.innerText.trim() === label);"
            " if (!hit) return false; hit.click(); return true; })()"
        )
        assert clicked, f"no button labelled {label!r}"

    def links(self) -> list[str]:
        """Every link's absolute URL on the page."""
        return list(self.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.href)") or [])

    def screenshot(self, path: Path) -> Path:
        """Save the whole page as a PNG (the full height, at the window's width)."""
        height = int(self.evaluate("Math.max(document.body.scrollHeight, window.innerHeight)") or self.height)
        self._call(
            "Emulation.setDeviceMetricsOverride",
            session=True,
            width=self.width,
            height=min(height, 6000),
            deviceScaleFactor=1,
            mobile=False,
        )
        data = self._call("Page.captureScreenshot", session=True, format="png")["data"]
        self._call("Emulation.clearDeviceMetricsOverride", session=True)
        path.write_bytes(base64.b64decode(data))
        return path
