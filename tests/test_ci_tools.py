"""Under CI a missing tool fails the test instead of skipping it (tests/support/tools.py, issue #26)."""
import pytest
from _pytest.outcomes import Failed, Skipped

from tests.support.tools import in_ci, missing, needs


@pytest.mark.parametrize("value, ci", [("true", True), ("1", True), ("", False), ("false", False), ("0", False)])
def test_ci_detection(monkeypatch, value, ci):
    monkeypatch.setenv("CI", value)
    assert in_ci() is ci


def test_missing_tool_skips_locally_and_fails_in_ci(monkeypatch):
    monkeypatch.setenv("CI", "")
    with pytest.raises(Skipped):
        missing("no chromium")
    assert needs(None, "x").args[0] is True                      # skipif(True): skipped locally
    monkeypatch.setenv("CI", "true")
    with pytest.raises(Failed, match="no chromium"):
        missing("no chromium")
    assert needs(None, "x").args[0] is False                     # under CI the test runs (and fails on its own)
