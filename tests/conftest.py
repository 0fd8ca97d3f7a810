import os, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session", autouse=True)
def outputs_dir(tmp_path_factory):
    "Every run made by the tests goes to a temporary outputs folder, never to the repository's."
    d = tmp_path_factory.mktemp("outputs")
    os.environ["CXR_OUT_DIR"] = str(d)
    os.environ.setdefault("MPLBACKEND", "Agg")
    return d
