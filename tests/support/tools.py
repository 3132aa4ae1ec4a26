"""Tests that need a tool from Debian (Chromium, Prometheus, promtool, amtool) or root (tmpfs): skipped on a
developer's machine without it, but a failure under CI (`CI=true`), where `make test` / .ci/run install every one of
them — a missing tool there is a broken pipeline, and a skip would hide that the test did not run."""
from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    """Whether this is the CI run (CI=true, or any non-empty value but false/0)."""
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def missing(reason: str, module_level: bool = False) -> None:
    """Skip with `reason` — or, under CI, fail with it."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: every test must run here)", pytrace=False)
    pytest.skip(reason, allow_module_level=module_level)


def needs(available: object, reason: str) -> pytest.MarkDecorator:
    """A marker: skip when the tool is missing, except under CI, where the test runs and fails on its absence."""
    return pytest.mark.skipif(not available and not in_ci(), reason=reason)
