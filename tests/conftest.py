import os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def pytest_collection_modifyitems(config, items):
    """Tests marked `slow` (the paper dry run, minutes) run in CI, which sets CXR_SLOW=1, or when asked for
    with `-m slow`; a local `make test` leaves them out, skipped with the reason."""
    if os.environ.get("CXR_SLOW") == "1" or "slow" in (config.getoption("markexpr") or ""): return
    skip = pytest.mark.skip(reason="slow: CI runs it (CXR_SLOW=1 make test); locally: pytest -m slow")
    for item in items:
        if "slow" in item.keywords: item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def outputs_dir(tmp_path_factory):
    "Every run made by the tests goes to a temporary outputs folder, never to the repository's."
    d = tmp_path_factory.mktemp("outputs")
    os.environ["CXR_OUT_DIR"] = str(d)
    os.environ.setdefault("MPLBACKEND", "Agg")
    return d


@pytest.fixture(scope="session")
def smoke_run(outputs_dir):
    """configs/smoke.yaml through `cxr-pipeline` once per test session: every stage notebook, its lessons and
    its stage, executed by papermill. `(run folder, completed process)`; the notebook tests read its executed
    notebooks and the pipeline tests its artifacts, so no stage notebook is executed twice for them."""
    r = subprocess.run([str(BIN / "cxr-pipeline"), "--config", "configs/smoke.yaml", "--run-name", "pipeline_smoke"],
                       cwd=ROOT, capture_output=True, text=True, timeout=1800)
    return outputs_dir / "pipeline_smoke", r


@pytest.fixture(scope="session")
def other_notebooks(outputs_dir):
    """The notebooks that are not stages (00_core, 00a_store, 08_pipeline, 10_study, index, ...) executed once
    per test session, as nbdev_test runs them but with their outputs kept, into `<outputs>/notebooks/`:
    `{name: executed notebook's path, or the error text of a failed one}`. The notebook tests check them and
    the docs build makes their pages from them."""
    from cxr_nbdev.core import STAGES
    from cxr_nbdev.pipeline import execute_notebooks
    names = [p.stem for p in sorted((ROOT / "nbs").glob("*.ipynb")) if p.stem not in STAGES]
    return execute_notebooks(names, outputs_dir, errors="keep")


def raw_ids_found(run, *data_dirs) -> dict:
    """The files under `run` that hold a raw patient_id or cxr_filename of the cohorts in `data_dirs`, with the
    first one found. Executed notebooks count from "## Running the stage" on: their lessons are toy data."""
    import re
    import pandas as pd
    raw = set()
    for d in data_dirs:
        m = pd.read_csv(Path(d) / "metadata.csv", dtype=str)
        raw |= set(m.patient_id.dropna()) | set(m.cxr_filename.dropna())
    pattern = re.compile("|".join(map(re.escape, sorted(raw, key=len, reverse=True))))
    hits = {}
    for f in sorted(Path(run).rglob("*")):
        if not f.is_file() or f.stat().st_size > 50e6: continue
        try: text = f.read_bytes().decode("utf-8")
        except UnicodeDecodeError: continue          # images, weights, arrays
        if f.suffix == ".ipynb":
            import nbformat
            nb = nbformat.reads(text, as_version=4)
            start = next((i for i, c in enumerate(nb.cells)
                          if c.cell_type == "markdown" and c.source.startswith("## Running the stage")), 0)
            text = "\n".join(nbformat.writes(nbformat.v4.new_notebook(cells=nb.cells[start:])).splitlines())
        if found := pattern.search(text): hits[str(f.relative_to(run))] = found.group()
    return hits
