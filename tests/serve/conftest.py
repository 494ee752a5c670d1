import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "export"))
from tinyruns import tiny_runs as _tiny_runs


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    return _tiny_runs(tmp_path_factory)
