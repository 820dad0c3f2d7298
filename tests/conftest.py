import os
from collections.abc import Generator
from pathlib import Path

import pytest

from tests.shared_data import REASON, require

pytest_plugins = ["tests.lab_fixture"]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The public data sets folder (tests/shared_data.py); skips the test when absent."""
    return require()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A test skipped for want of the shared data is reported at its own line.

    pytest reports a skip where skip() was called, and its summary groups skips by that
    place: every test would collapse into one line at tests/shared_data.py, and a cached
    fixture's skip would repeat the first test's name. The summary should list them all.
    """
    report = yield
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple) and REASON in str(longrepr[2]):
        path, line = item.reportinfo()[:2]
        report.longrepr = (os.fspath(path), (line or 0) + 1, longrepr[2])
    return report
