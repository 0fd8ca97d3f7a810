"""Parameters are checked before anything runs: ranges written beside the defaults, YAML numbers such as
1e-3 read as numbers, YAML syntax errors and bad values reported in one line naming the culprit."""
import subprocess
import pytest
from conftest import ROOT, BIN
from cxr_nbdev.core import (STAGES, ParamError, Range, load_params, parameter_ranges, pipeline_ranges,
                            read_yaml, stage_notebook, stage_parameters, stage_ranges)
from cxr_nbdev.pipeline import check_stages, select_stages


def one_line_error(fn, *parts):
    "Call `fn`, expect a ParamError whose message is one line holding every string in `parts`."
    with pytest.raises(ParamError) as e: fn()
    msg = str(e.value)
    assert "\n" not in msg, msg
    for p in parts: assert p in msg, (p, msg)
    return msg


def test_out_of_range_value_names_key_value_range_and_stage():
    r = stage_ranges("03_ddpm")["lr"]
    one_line_error(lambda: load_params({"lr": -1}), "parameter 'lr' = -1 is outside its range", str(r), "(03_ddpm)")
    one_line_error(lambda: load_params(None, [("lr", "-1")]), "'lr' = -1", "(03_ddpm)")


def test_train_steps_zero_is_stopped_before_03_runs():
    "`train_steps 0` used to reach 03 and fail with an AttributeError inside it."
    if 0 in stage_ranges("03_ddpm").get("train_steps", Range("[0, inf)")):
        pytest.skip("03 allows train_steps = 0")
    one_line_error(lambda: check_stages({"train_steps": 0}, ["03_ddpm"]), "'train_steps' = 0", "03_ddpm")


def test_choice_value_not_allowed():
    choices = stage_ranges("03_ddpm")["prediction_type"]
    assert choices.choices is not None
    one_line_error(lambda: load_params({"prediction_type": "eps"}),
                   "parameter 'prediction_type' = 'eps' is not one of", str(choices), "(03_ddpm)")


def test_list_values_are_checked_element_by_element():
    one_line_error(lambda: load_params({"split_fractions": [0.9, -0.05, 0.15]}), "'split_fractions'")
    assert load_params({"split_fractions": [0.8, 0.1, 0.1]})["split_fractions"] == [0.8, 0.1, 0.1]


def test_yaml_exponent_numbers_are_floats(tmp_path):
    "PyYAML (YAML 1.1) reads 1e-3 as a string; the configs read it as a number, like `-p lr 1e-3`."
    f = tmp_path / "c.yaml"
    f.write_text("lr: 1e-3\ndiag_lr: 2E-4\nguidance_scale: 1e+1\n")
    p = load_params(f)
    assert p == {"lr": 1e-3, "diag_lr": 2e-4, "guidance_scale": 10.0}
    assert all(type(v) is float for v in p.values())
    assert load_params(None, [("lr", "1e-3")]) == {"lr": 1e-3}
    assert read_yaml(_write(tmp_path / "n.yaml", "a: -2e-4\nb: 1.5e3\nc: 12\nd: 1e-3x\n")) == \
        {"a": -2e-4, "b": 1500.0, "c": 12, "d": "1e-3x"}


def _write(f, text):
    f.write_text(text)
    return f


def test_yaml_syntax_error_is_one_line_with_file_line_column(tmp_path):
    f = _write(tmp_path / "bad.yaml", "run_name: x\nseed: 0\n  lr: 1e-3\n")
    one_line_error(lambda: load_params(f), f"{f}:3:5: YAML syntax error", "mapping values are not allowed")
    f = _write(tmp_path / "bad2.yaml", "run_name: x\nsplit_fractions: [0.9, 0.05\nseed: 0\n")
    one_line_error(lambda: load_params(f), f"{f}:3:", "YAML syntax error")


def test_every_annotation_parses_and_every_default_is_in_range():
    "A range typo in any notebook, or a default outside its own range, fails here (not in a user's run)."
    ranges = pipeline_ranges()
    assert ranges, "no parameter carries a ` | range` annotation"
    for s in STAGES:
        if stage_notebook(s).exists():
            rs = parameter_ranges(stage_notebook(s))
            assert set(rs) <= set(stage_parameters(s)), s
    check_stages({}, select_stages())


def test_configs_pass_the_range_check():
    import yaml
    from cxr_nbdev.study import read_study, study_runs
    for cfg in sorted((ROOT / "configs").glob("*.yaml")):
        if "study_name" in (yaml.safe_load(cfg.read_text()) or {}):   # a study: each of its runs
            for run in study_runs(read_study(cfg)): check_stages(run["params"], select_stages())
        else: check_stages(load_params(cfg), select_stages())


def test_cli_reports_one_line_and_exits_2(tmp_path):
    "cxr-pipeline checks everything before running any stage: one line on stderr, exit status 2."
    bad = _write(tmp_path / "bad.yaml", "run_name: x\nseed: [0\n")
    for args, want in [(["-p", "lr", "-1"], "parameter 'lr' = -1 is outside its range"),
                       (["--config", str(bad)], f"{bad}:3:1: YAML syntax error")]:
        r = subprocess.run([str(BIN / "cxr-pipeline"), *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, r.stderr
        assert r.stderr.count("\n") == 1 and want in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert "stage(s)" not in r.stdout  # nothing ran


def test_cli_refuses_values_that_clash_odd_names_and_bad_cohort_tables(tmp_path, capsys):
    "Issue 26's late or raw errors, each now one line and exit 2 before any stage runs."
    from cxr_nbdev.pipeline import main
    dup = _write(tmp_path / "dup.yaml", "seed: 0\nlr: 1e-3\nlr: 1e-4\n")
    head = "patient_id,cxr_filename,cxr_path,age,sex,ivsd,lvpwd,lvidd\n"
    latin, outside = tmp_path / "latin", tmp_path / "outside"
    latin.mkdir(), outside.mkdir()
    (latin / "metadata.csv").write_bytes((head + "Zo\xeb,a.dcm,a.dcm,60,F,1,1,5\n").encode("latin-1"))
    (outside / "metadata.csv").write_text(head + "p1,a.dcm,../../etc/passwd,60,F,1,1,5\n")
    afile = _write(tmp_path / "afile", "")
    cases = [(["-p", "split_fractions", "[0.5, 0.5, 0.5]"], "sum to 1"),
             (["-p", "external_patients", "265", "-p", "external_images", "5"], "at least external_patients 265"),
             (["-p", "device", "tpu"], "device 'tpu' must be auto, cpu, cuda, cuda:N or mps"),
             (["-p", "sets", "[]"], "at least one"),
             (["--config", str(dup)], f"{dup}:3:1: YAML error: duplicate key 'lr' (first on line 2)"),
             (["--run-name", "x" * 300], "must be a plain folder name"),
             (["--run-name", "ok", "-p", "out_dir", str(afile)], f"cannot create the run folder {afile / 'ok'}"),
             (["-p", "data_dir", str(latin)], "data_dir: ") ,
             (["-p", "data_dir", str(latin)], "not UTF-8 (byte 0xeb on line 2)"),
             (["-p", "data_dir", str(outside)], "1 cxr_path value(s) point outside")]
    for args, want in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and want in err and "Traceback" not in err, (args, err)
