"""The `cxr-pipeline` runner end to end: the whole pipeline at smoke scale, a bad parameter, a failing stage."""
import json, os, subprocess
import pytest
from conftest import ROOT, BIN


def cli(*args, timeout=1800):
    return subprocess.run([str(BIN / "cxr-pipeline"), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_smoke_pipeline(outputs_dir):
    "configs/smoke.yaml runs every stage with papermill and leaves executed notebooks, manifest and done markers."
    from cxr_nbdev.pipeline import select_stages
    r = cli("--config", "configs/smoke.yaml", "--run-name", "pipeline_smoke")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    run = outputs_dir / "pipeline_smoke"
    man = json.loads((run / "manifest.json").read_text())
    for s in select_stages():
        assert (run / "notebooks" / f"{s}.ipynb").exists(), s
        assert (run / s / "done.json").exists(), s
        assert man["stages"][s]["status"] == "done", s
    assert man["versions"]["torch"] and "commit" in man["git"]
    # resuming from the last stage reruns only that stage
    last = select_stages()[-1]
    r = cli("--config", "configs/smoke.yaml", "--run-name", "pipeline_smoke", "--from", last)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"1 stage(s): {last}" in r.stdout


def test_unknown_parameter_fails_at_once():
    r = cli("--config", "configs/smoke.yaml", "-p", "bogus_key", "1", timeout=120)
    assert r.returncode == 2
    assert "bogus_key" in r.stderr


def test_ill_typed_parameter_fails_at_once():
    r = cli("--config", "configs/smoke.yaml", "-p", "seed", "abc", timeout=120)
    assert r.returncode == 2 and "'seed' must be int" in r.stderr


def test_failing_stage_points_at_executed_notebook(outputs_dir):
    import torch
    if torch.cuda.is_available(): pytest.skip("needs a machine without CUDA to force a failure")
    r = cli("--config", "configs/smoke.yaml", "--run-name", "fails", "--only", "01_phantom", "-p", "device", "cuda", timeout=600)
    assert r.returncode == 1
    nb = outputs_dir / "fails" / "notebooks" / "01_phantom.ipynb"
    assert "stage 01_phantom failed" in r.stderr and str(nb) in r.stderr and "CUDA is not available" in r.stderr
    assert nb.exists()
