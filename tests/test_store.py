"""`cxr-pipeline --store`: the run mirrored to a real S3-compatible server (moto's, started here on localhost),
a smoke run killed in 03, its outputs wiped, resumed on the "fresh machine" from the store alone."""
import hashlib, json, os, shutil, signal, socket, subprocess, time
from pathlib import Path
import pytest
from conftest import ROOT, BIN

RUN = "pipeline_smoke"   # the reference run of tests/test_pipeline.py (same phantom data, same pseudonyms)
# files that must be byte-identical to an uninterrupted run's (the pipeline is deterministic on a CPU)
IDENTICAL = ["03_ddpm/model/diffusion_pytorch_model.safetensors",
             "03_ddpm/pipeline/unet/diffusion_pytorch_model.safetensors",
             "03_ddpm/pipeline/cond_encoder/diffusion_pytorch_model.safetensors",
             "05_cohort/gen/**/*.dcm", "05_cohort/gen/metadata.csv", "06_diagnostic/predictions.csv",
             "07_analysis/claims.csv"]


def artifact_digests(run: Path) -> dict:
    "SHA-256 of each file the `IDENTICAL` patterns match under `run`."
    files = sorted({p for pat in IDENTICAL for p in Path(run).glob(pat) if p.is_file()})
    return {p.relative_to(run).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def reference_file(outputs_dir: Path) -> Path: return outputs_dir / f"{RUN}.reference.json"


@pytest.fixture(scope="module")
def s3():
    "A moto S3 server on a free localhost port, the AWS_* environment pointing at it, and a bucket."
    from moto.server import ThreadedMotoServer
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = dict(AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import fsspec
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir("cxr-runs")
    yield fs
    for k, v in old.items():
        if v is None: os.environ.pop(k, None)
        else: os.environ[k] = v
    server.stop()


def pipeline(*args):
    "The smoke run's command, without the lessons: its artifacts must still equal the smoke run's."
    return [str(BIN / "cxr-pipeline"), "--config", "configs/smoke.yaml", "--run-name", RUN, "--no-lessons", *args]


def wait_for(fs, key, proc, timeout=1500):
    "Poll the store until `key` exists (True), or the process ends first (False)."
    t0 = time.time()
    while time.time() - t0 < timeout:
        fs.invalidate_cache()
        if fs.exists(key): return True
        if proc.poll() is not None: return False
        time.sleep(0.3)
    raise TimeoutError(key)


def test_killed_run_resumes_from_the_store(s3, outputs_dir, tmp_path):
    "Killed after 03's first checkpoint, wiped, re-run with the same store: artifacts equal an uninterrupted run's."
    ref = reference_file(outputs_dir)
    if not ref.exists():   # run alone: make the uninterrupted reference here
        r = subprocess.run(pipeline("-p", "out_dir", str(tmp_path / "ref")), cwd=ROOT, capture_output=True,
                           text=True, timeout=3000)
        assert r.returncode == 0, r.stderr[-3000:]
        ref.write_text(json.dumps(artifact_digests(tmp_path / "ref" / RUN)))
    reference = json.loads(ref.read_text())
    assert len(reference) >= 8, reference
    out, store = tmp_path / "machine", "s3://cxr-runs/runs"
    first = subprocess.Popen(pipeline("-p", "out_dir", str(out), "--store", store, "--store-every", "1",
                                      "--only", "01_phantom", "02_preprocessing", "03_ddpm"),
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        seen = wait_for(s3, f"cxr-runs/runs/{RUN}/03_ddpm/checkpoints/step_000015.pt", first)
    finally:
        if first.poll() is None: os.killpg(first.pid, signal.SIGKILL)   # preempted
        log = first.communicate()[0].decode(errors="replace")
    assert seen, log[-3000:]
    s3.invalidate_cache()
    assert not s3.exists(f"cxr-runs/runs/{RUN}/03_ddpm/done.json")      # killed inside 03
    assert s3.exists(f"cxr-runs/runs/{RUN}/02_preprocessing/done.json")
    shutil.rmtree(out)                                                    # the machine's disk is gone,
    data = ROOT / "data" / "phantom" / RUN                                # and the phantom cohort with it
    aside = data.with_name(f".{RUN}.aside")
    if data.exists(): data.rename(aside)
    try:
        t0 = time.time()
        r = subprocess.run(pipeline("-p", "out_dir", str(out), "--store", store, "--store-every", "5"),
                           cwd=ROOT, capture_output=True, text=True, timeout=3000)
        seconds = time.time() - t0
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        assert not data.exists()                          # 01 and 02 were restored, not re-run
    finally:
        shutil.rmtree(data, ignore_errors=True)
        if aside.exists(): aside.rename(data)
    assert "01_phantom: finished with these parameters" in r.stdout, r.stdout[-3000:]
    print(next(line for line in r.stdout.splitlines() if line.startswith("restored ")))
    assert "02_preprocessing: finished with these parameters" in r.stdout
    done03 = json.loads((out / RUN / "03_ddpm" / "done.json").read_text())["summary"]
    assert 15 <= done03["resumed_from"] < done03["train_steps"], done03   # from a checkpoint, mid-training
    got = artifact_digests(out / RUN)
    assert got.keys() == reference.keys()
    assert [k for k in got if got[k] != reference[k]] == []
    from cxr_nbdev.store import RunStore, local_files
    mirror = RunStore(store, out / RUN)
    held = mirror.remote_files()
    assert {k: v[0] for k, v in local_files(out / RUN).items()} == held   # the store holds the finished run
    print(f"resumed from step {done03['resumed_from']}; resumed run: {seconds:.0f} s; store holds {len(held)} files, {sum(held.values()) / 1e6:.1f} MB")
