"""Headless Chromium for browser tests: Debian's ``chromium`` driven by Playwright.

No browser is ever downloaded (``playwright install`` is never run): the binary is the one
``make system-deps`` installs from Debian.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium; fails (never skips) when Debian's binary is missing."""
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(f"{CHROMIUM} is missing: `make system-deps` installs Debian's chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


ARTIFACTS = Path(
    os.environ.get("SENTINEL_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts")
)


def artifact(name: str) -> Path:
    """Where a browser test saves ``name`` (a screenshot) for people to look at afterwards:
    ``test-artifacts/`` in the checkout (``SENTINEL_TEST_ARTIFACTS`` moves it)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


def pump_until(page: Page, condition: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    """Waits for ``condition`` while letting Playwright deliver the page's events (a plain
    sleep would not: its callbacks run only inside Playwright calls)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        page.wait_for_timeout(100)
