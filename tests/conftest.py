"""Shared fixtures: where the shared data lives, and a clear skip when it is missing.

The data is looked up in ``$RELAX_DATA`` or ``../shared/data`` next to the
repository.  Outside CI a missing data set skips the test with the reason; in CI
(``CI`` set) the data must be there, so a missing directory fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    return Path(os.environ.get("RELAX_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = data_root()
    if not root.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"shared data missing in CI: {root}")
        pytest.skip(f"shared data not found at {root} (set RELAX_DATA)")
    return root
