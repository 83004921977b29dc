"""Debian's chromium driven by Playwright (it downloads no browser): the tests' real browser."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("RECSYS_TEST_CHROMIUM", "/usr/bin/chromium"))


@contextmanager
def chromium() -> Iterator:
    """A launched browser; fails (not skips) without chromium, saying how to get it."""
    if not CHROMIUM.is_file():
        pytest.fail(f"no chromium at {CHROMIUM}: `make test` installs Debian's (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM))  # Playwright adds --no-sandbox (root here)
        try:
            yield browser
        finally:
            browser.close()
