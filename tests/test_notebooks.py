"""Each notebook runs under nbdev's test machinery (one pytest test per notebook, so a failure names
the notebook), the exported package is in step with the notebooks, and the parameters cells follow
the conventions the pipeline relies on."""
import subprocess, sys
from pathlib import Path
import pytest
from conftest import ROOT, BIN

NBS = sorted((ROOT / "nbs").glob("*.ipynb"))


@pytest.mark.parametrize("nb", NBS, ids=lambda p: p.stem)
def test_notebook(nb, request):
    """A stage notebook ran whole, every cell without an error, in the session's smoke run (papermill runs
    all cells, lessons and stage, so it checks what nbdev_test would and more); any other notebook ran as
    nbdev_test runs it (`slow`/`cuda`/`notest` cells skipped) in the session's `other_notebooks`."""
    from cxr_nbdev.core import STAGES
    if nb.stem in STAGES:
        import nbformat
        run, r = request.getfixturevalue("smoke_run")
        executed = run / "notebooks" / nb.name
        assert executed.exists(), f"{nb.name}: the smoke run did not reach it:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        cells = [c for c in nbformat.read(executed, as_version=4).cells if c.cell_type == "code"]
        source = [c for c in nbformat.read(nb, as_version=4).cells if c.cell_type == "code"]
        failed = [c.source[:200] for c in cells if c.metadata.get("papermill", {}).get("exception")]
        assert not failed, f"{nb.name}: cells raised in the smoke run ({executed}): {failed}"
        unrun = [c.source[:80] for c in cells if c.execution_count is None]
        assert len(cells) >= len(source) and not unrun, f"{nb.name}: cells not executed: {unrun[:3]}"
        return
    executed = request.getfixturevalue("other_notebooks")[nb.stem]
    assert isinstance(executed, Path) and executed.exists(), f"{nb.name} failed as nbdev_test runs it:\n{executed}"


def test_export_leaves_package_unchanged():
    "cxr_nbdev/ is generated: nbdev_export over the committed notebooks must not change it."
    pkg = ROOT / "cxr_nbdev"
    before = {p.name: p.read_text() for p in pkg.glob("*.py")}
    r = subprocess.run([str(BIN / "nbdev_export")], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    after = {p.name: p.read_text() for p in pkg.glob("*.py")}
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    for k in changed:  # put the committed files back so the work tree is left as found
        if k in before: (pkg / k).write_text(before[k])
        else: (pkg / k).unlink()
    assert not changed, f"nbdev_export changed {changed}: the package is out of step with nbs/ (or was edited by hand)"


def test_notebooks_are_clean():
    "Notebooks are committed clean (no outputs, execution counts or stray metadata): nbdev_clean changes nothing."
    before = {p: p.read_text() for p in NBS}
    r = subprocess.run([str(BIN / "nbdev_clean")], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    changed = [p.name for p in NBS if p.read_text() != before[p]]
    for p in NBS: p.write_text(before[p])
    assert not changed, f"run nbdev_clean: {changed} are not clean"


def test_parameters_cells():
    "Every stage has exactly one `parameters` cell with the common keys; shared keys share defaults."
    from cxr_nbdev.core import STAGES, COMMON_PARAMS, notebook_parameters, stage_notebook
    import nbformat
    seen = {}
    for s in STAGES:
        nb = stage_notebook(s)
        if not nb.exists(): continue
        cells = [c for c in nbformat.read(nb, as_version=4).cells if "parameters" in c.metadata.get("tags", [])]
        assert len(cells) == 1, f"{nb.name}: {len(cells)} cells tagged parameters"
        params = notebook_parameters(nb)
        from papermill.inspection import inspect_notebook  # papermill must parse every line too (quotes in comments break it)
        assert sorted(inspect_notebook(str(nb))) == sorted(params), f"{nb.name}: papermill cannot parse some parameter lines"
        for k in COMMON_PARAMS: assert k in params, f"{nb.name} lacks common parameter {k}"
        for k, v in params.items():
            if k in seen: assert seen[k][1] == v, f"{k}: default {v!r} in {s} but {seen[k][1]!r} in {seen[k][0]}"
            else: seen[k] = (s, v)


def test_configs_are_valid():
    "configs/*.yaml only use parameters the stage notebooks declare, with the right types (a study: each run's)."
    import yaml
    from cxr_nbdev.core import load_params
    from cxr_nbdev.study import read_study, study_runs
    for cfg in sorted((ROOT / "configs").glob("*.yaml")):
        if "study_name" in (yaml.safe_load(cfg.read_text()) or {}): study_runs(read_study(cfg))
        else: load_params(cfg)


def test_readme_is_generated_from_index():
    "README.md is nbs/index.ipynb converted to markdown (`make readme`)."
    from nbconvert import MarkdownExporter
    body, _ = MarkdownExporter().from_filename(str(ROOT / "nbs" / "index.ipynb"))
    assert (ROOT / "README.md").read_text() == body, "README.md is stale: run `make readme`"
