"""`cxr-study` on a real local Ray cluster (issue 22): a study of two runs that share 01, stopped once
the first run has finished and started again, finishes only what was missing; a second study takes the
first's finished stages (`share_from`)."""
import json, os, signal, subprocess, time
from conftest import ROOT, BIN

STUDY = "configs/study-smoke.yaml"


def study(*args, config=STUDY, timeout=1200):
    return subprocess.run([str(BIN / "cxr-study"), "--config", str(config), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_study_stops_and_resumes_on_ray(outputs_dir):
    runs = outputs_dir / "study-smoke" / "runs"
    first, second = runs / "study-smoke.image_size-16", runs / "study-smoke.image_size-24"
    p = subprocess.Popen([str(BIN / "cxr-study"), "--config", STUDY], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, start_new_session=True)
    t0, seen, sj = time.time(), set(), outputs_dir / "study-smoke" / "study.json"
    while not (first / "02_preprocessing" / "done.json").exists():          # stop the study once run 1 is done
        assert p.poll() is None and time.time() - t0 < 1200, p.stdout.read()[-3000:] if p.stdout else ""
        try: seen.add(json.loads(sj.read_text())["runs"][first.name]["state"])
        except (OSError, ValueError, KeyError): pass                 # not written yet, or mid-replace
        time.sleep(0.5)
    assert "running" in seen, seen                                  # the states show the run at work
    os.killpg(p.pid, signal.SIGINT)                                 # what Ctrl-C does
    p.wait(timeout=120)
    assert not (second / "02_preprocessing" / "done.json").exists()
    r = study()
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    states = json.loads((outputs_dir / "study-smoke" / "study.json").read_text())["runs"]
    assert states[first.name]["state"] == "done" and "executed" not in states[first.name]   # not run again
    assert states[second.name]["executed"] == ["02_preprocessing"]
    assert set(states[second.name]["taken"]) <= {"01_phantom"}
    # 01 was computed once: the second run's files are the first run's, linked
    a, b = (d / "01_phantom" / "table_one.csv" for d in (first, second))
    assert a.stat().st_ino == b.stat().st_ino
    fp = lambda d: json.loads((d / "02_preprocessing" / "done.json").read_text())["fingerprint"]
    assert fp(first) != fp(second)
    s = study("--status")
    rows = [line.split()[-2:] for line in s.stdout.strip().splitlines()[1:]]
    assert s.returncode == 0 and rows == [["done", "2/2"]] * 2, s.stdout
    r = study()                                                     # nothing left: nothing runs
    assert r.returncode == 0 and "executed" not in json.loads(
        (outputs_dir / "study-smoke" / "study.json").read_text())["runs"][second.name]
    # another study that shares the first's stages: its image_size-24 run computes nothing (01 and 02
    # taken from the smoke study, its params.yaml written), its image_size-32 run only 02
    other = outputs_dir / "study-other.yaml"
    other.write_text("study_name: study-other\nconfig: configs/smoke.yaml\n"
                     "stages: [01_phantom, 02_preprocessing]\ngrid:\n  image_size: [24, 32]\n"
                     "cpus_per_run: 1\nshare_from: [study-smoke]\n")
    r = study(config=other)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    states = json.loads((outputs_dir / "study-other" / "study.json").read_text())["runs"]
    same, new = states["study-other.image_size-24"], states["study-other.image_size-32"]
    assert same["executed"] == [] and sorted(same["taken"]) == ["01_phantom", "02_preprocessing"]
    assert new["executed"] == ["02_preprocessing"] and new["taken"] == ["01_phantom"]
    mine = outputs_dir / "study-other" / "runs" / "study-other.image_size-24"
    assert (mine / "params.yaml").exists()
    c = mine / "02_preprocessing" / "done.json"
    assert c.stat().st_ino == (second / "02_preprocessing" / "done.json").stat().st_ino
