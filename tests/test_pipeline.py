"""The `cxr-pipeline` runner end to end: the whole pipeline at smoke scale, a bad parameter, a failing stage,
a failed re-run that must not look finished."""
import json, os, subprocess
from pathlib import Path
import pytest
from conftest import ROOT, BIN, raw_ids_found


def cli(*args, timeout=1800):
    return subprocess.run([str(BIN / "cxr-pipeline"), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_smoke_pipeline(smoke_run):
    "configs/smoke.yaml runs every stage with papermill and leaves executed notebooks, manifest and done markers."
    from cxr_nbdev.pipeline import select_stages
    run, r = smoke_run
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    from test_store import artifact_digests, reference_file   # the uninterrupted run test_store compares to
    reference_file(run.parent).write_text(json.dumps(artifact_digests(run)))
    man = json.loads((run / "manifest.json").read_text())
    for s in select_stages():
        assert (run / "notebooks" / f"{s}.ipynb").exists(), s
        assert (run / s / "done.json").exists(), s
        assert man["stages"][s]["status"] == "done", s
    assert man["versions"]["torch"] and "commit" in man["git"]
    # tqdm renders widgets (ipywidgets installed): no "IProgress not found" warning in any stage
    noisy = [s for s in select_stages() if "IProgress not found" in (run / "notebooks" / f"{s}.ipynb").read_text()]
    assert noisy == [], f"tqdm warns 'IProgress not found' in {noisy}: is ipywidgets installed?"
    # 06's forked trainings make no widgets (ipykernel would print each of their messages to the log)
    assert "attempted to send message from fork" not in r.stdout + r.stderr, "a forked worker made a progress bar"
    # every run states its claims with both variances (smoke: 2 replicates per set)
    import pandas as pd
    claims = pd.read_csv(run / "07_analysis" / "claims.csv")
    need = ["claim", "verdict", "estimate", "ci_low", "ci_high", "se_training", "se_patients", "replicates"]
    assert [c for c in need if c not in claims.columns] == []
    auroc = claims[claims.replicates >= 2]
    assert len(auroc) == 6 and auroc.se_training[auroc.estimate.notna()].notna().all()
    assert (run / "06_diagnostic" / "predictions_val.csv").exists()
    # no output names a patient: pseudonyms everywhere, the key beside the data
    s1 = json.loads((run / "01_phantom" / "done.json").read_text())["summary"]
    assert raw_ids_found(run, s1["data_dir"], s1["external_dir"]) == {}
    s2 = json.loads((run / "02_preprocessing" / "done.json").read_text())["summary"]
    assert Path(s2["pseudonym_key"]) == Path(s1["data_dir"]) / "pseudonym.key" and s2["factors"]
    cache = pd.read_csv(run / "02_preprocessing" / "cache" / "metadata.csv")
    from cxr_nbdev.core import pseudonym_table
    back = pseudonym_table(s1["data_dir"]).set_index("metadata_row")
    assert (back.pseudonym[cache.metadata_row[cache.split != "external"]].to_numpy()
            == cache.patient_id[cache.split != "external"].to_numpy()).all()
    ruler = pd.read_csv(run / "07_analysis" / "ruler_gains.csv")
    assert len(ruler)                           # 07 joined the factors under the same pseudonyms
    # resuming from the last stage reruns only that stage
    last = select_stages()[-1]
    r = cli("--config", "configs/smoke.yaml", "--run-name", "pipeline_smoke", "--from", last)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"1 stage(s): {last}" in r.stdout
    check_lineage(run)


def _cohort_bytes(run):
    return b"".join(p.read_bytes() for p in sorted((run / "05_cohort" / "gen").rglob("*.dcm")))


def check_lineage(run):
    "A retrained DDPM makes 04-07 stale: they are named, refused as inputs, and remade by --from."
    import yaml
    from cxr_nbdev.runs import stale_stages
    from cxr_nbdev.pipeline import stale_after
    assert stale_stages(run) == {}
    params = yaml.safe_load((run / "params.yaml").read_text())
    assert stale_after(run, params, ["02_preprocessing"]) == {}   # the same parameters change nothing
    later = {"04_inversion", "05_cohort", "06_diagnostic", "07_analysis"}
    assert set(stale_after(run, {**params, "train_steps": 34}, ["03_ddpm"])) == later
    assert stale_after(run, {**params, "resume": False}, ["03_ddpm"]) == {}   # how, not what
    cohort, fp03 = _cohort_bytes(run), json.loads((run / "03_ddpm" / "done.json").read_text())["fingerprint"]
    r = cli("--config", "configs/smoke.yaml", "--run-name", "pipeline_smoke", "--only", "03_ddpm",
            "-p", "train_steps", "34", "-p", "resume", "false", "--no-lessons")
    assert r.returncode == 0, r.stderr[-3000:]
    assert all(f"{s:<18} stale:" in r.stdout for s in later), r.stdout
    assert f"{'05_cohort':<18} stale: 03_ddpm has changed" in r.stdout
    man = json.loads((run / "manifest.json").read_text())
    assert {s for s, v in man["stages"].items() if v["status"] == "stale"} == later
    assert yaml.safe_load((run / "params.yaml").read_text())["train_steps"] == 34
    r = cli("--config", "configs/smoke.yaml", "--run-name", "pipeline_smoke", "--only", "06_diagnostic", timeout=120)
    assert r.returncode == 2 and "its input 05_cohort is stale" in r.stderr, r.stderr[-2000:]
    r = cli("--config", "configs/smoke.yaml", "--run-name", "pipeline_smoke", "--from", "04_inversion",
            "--no-lessons")
    assert r.returncode == 0, r.stderr[-3000:]
    assert stale_stages(run) == {}
    import nbformat                        # the reruns ran the stage notebooks without their lessons
    nb = nbformat.read(run / "notebooks" / "05_cohort.ipynb", as_version=4)
    assert "Run without its lessons" in nb.cells[1].source, nb.cells[1].source
    rec05 = json.loads((run / "05_cohort" / "done.json").read_text())
    fp03_new = json.loads((run / "03_ddpm" / "done.json").read_text())["fingerprint"]
    assert fp03_new != fp03 and rec05["lineage"]["inputs"]["03_ddpm"] == fp03_new
    assert _cohort_bytes(run) != cohort    # generated anew by the new model


def test_second_run_with_the_same_name_stops_at_once(outputs_dir):
    "While one cxr-pipeline holds a run, another with the same name stops in seconds, naming it."
    from cxr_nbdev.core import run_dir
    from cxr_nbdev.runs import hold_run
    run = run_dir("locked")
    import multiprocessing as mp
    ctx = mp.get_context("spawn")   # a fresh interpreter, as a second command would be
    ready, done = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_hold, args=(str(run), ready, done))
    p.start()
    try:
        assert ready.wait(60)
        r = cli("--config", "configs/smoke.yaml", "--run-name", "locked", timeout=120)
        assert r.returncode == 2 and "in use by another cxr-pipeline" in r.stderr and f"pid {p.pid}" in r.stderr, r.stderr
        assert not (run / "notebooks" / "01_phantom.ipynb").exists()   # nothing ran
    finally:
        done.set(); p.join(30)
    man = json.loads((run / "manifest.json").read_text())
    assert man["stages"]["01_phantom"]["status"] == "running"   # what the holder left
    with hold_run(run): pass                                    # free again; the dead stage is
    man = json.loads((run / "manifest.json").read_text())       # marked interrupted
    assert man["stages"]["01_phantom"]["status"] == "interrupted"


def _hold(run, ready, done):
    from pathlib import Path
    from cxr_nbdev.runs import hold_run, update_manifest
    with hold_run(Path(run)):
        update_manifest(run, lambda m: m["stages"].update({"01_phantom": {"status": "running"}}))
        ready.set()
        done.wait(120)


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
    from cxr_nbdev.core import stage_parameters
    from cxr_nbdev.runs import start_stage
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
