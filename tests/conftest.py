from pathlib import Path

import pytest

from tests.shared_data import require

pytest_plugins = ["tests.lab_fixture"]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The public data sets folder (tests/shared_data.py); skips the test when absent."""
    return require()
