from __future__ import annotations

from typing import Any

import pytest
from report_runs import make_run


@pytest.fixture
def run_dict() -> dict[str, Any]:
    return make_run()
