"""The `cxr-pipeline` runner end to end: the whole pipeline at smoke scale, a bad parameter, a failing stage,
a failed re-run that must not look finished."""
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
    # every run states its claims with both variances (smoke: 2 replicates per set)
    import pandas as pd
    claims = pd.read_csv(run / "07_analysis" / "claims.csv")
    need = ["claim", "verdict", "estimate", "ci_low", "ci_high", "se_training", "se_patients", "replicates"]
    assert [c for c in need if c not in claims.columns] == []
    auroc = claims[claims.replicates >= 2]
    assert len(auroc) == 6 and auroc.se_training[auroc.estimate.notna()].notna().all()
    assert (run / "06_diagnostic" / "predictions_val.csv").exists()
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
    assert "without encryption" not in r.stdout + r.stderr


def test_start_stage_invalidates_done_marker(tmp_path):
    "A stage that starts again removes its done.json until it finishes, so a failed re-run cannot look finished."
    from cxr_nbdev.core import start_stage, stage_parameters
    ns = {**stage_parameters("01_phantom"), "run_name": "rerun", "out_dir": str(tmp_path)}
    st = start_stage("01_phantom", ns)
    st.finish()
    assert st.done("01_phantom") is not None
    again = start_stage("01_phantom", ns)
    assert again.done("01_phantom") is None


def test_failing_rerun_removes_old_done_marker(outputs_dir):
    "An earlier success's done.json does not survive a re-run that fails (here: at the device check)."
    import torch
    if torch.cuda.is_available(): pytest.skip("needs a machine without CUDA to force a failure")
    done = outputs_dir / "stale" / "01_phantom" / "done.json"
    done.parent.mkdir(parents=True)
    done.write_text(json.dumps({"stage": "01_phantom", "params": {}, "summary": {}}))
    r = cli("--config", "configs/smoke.yaml", "--run-name", "stale", "--only", "01_phantom", "-p", "device", "cuda", timeout=600)
    assert r.returncode == 1 and "stage 01_phantom failed" in r.stderr, r.stderr[-3000:]
    assert not done.exists()
    stage = json.loads((outputs_dir / "stale" / "manifest.json").read_text())["stages"]["01_phantom"]
    assert stage["status"] == "failed" and "CUDA is not available" in stage["error"]
    assert "without encryption" not in r.stdout + r.stderr  # papermill's kernel runs over IPC, not TCP
