"""The study report (issue 22): fake run folders in the stages' real formats (06's predictions and
done.json, 07's claims.csv by 07's own `paper_claims`), pooled over DDPM seeds and checked against a
hand computation; the figure and study.md are written; a study without 07 says so; `cxr-study
--report` writes it; the study parameters of 03 and 06 are range-checked."""
import math
import numpy as np, pandas as pd, pytest, yaml
from scipy import stats
from sklearn.metrics import roc_auc_score
from conftest import ROOT
from cxr_nbdev.core import ParamError, load_params
from cxr_nbdev.study_report import NO_ANALYSIS, simulate_run, write_study_report

TRUTH = dict(base=0.74, gen=0.70, base_gen=0.75, base_genpos=0.80)


def fake_study(folder, seeds=(0, 1, 2), fractions=(0.5, 1.0), analysis=True):
    for seed in seeds:
        for rf in fractions:
            p = dict(run_name=f"fake.seed-{seed}_rf-{rf}", seed=seed, real_fraction=rf,
                     synthetic_multiple=1.0, block_out_channels=[16, 32])
            simulate_run(folder / "runs" / p["run_name"], p, TRUTH, n_patients=80, analysis=analysis)
    return folder


def by_hand(run, cohort, s):
    "The mean over replicates of sklearn's AUROC, from the file itself."
    name = "predictions.csv" if cohort == "test" else "predictions_external.csv"
    pred = pd.read_csv(run / "06_diagnostic" / name)
    return np.mean([roc_auc_score(pred.composite_slvh_dlv, pred[f"{s}_rep{r}_p_composite"])
                    for r in (0, 1)])


def t_interval(v, ci=0.95):
    v = np.asarray(v)
    half = stats.t.ppf((1 + ci) / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return v.mean(), v.mean() - half, v.mean() + half


def test_pooled_numbers_match_a_hand_computation(tmp_path):
    study = fake_study(tmp_path / "fake")
    md = write_study_report(study)
    runs = {seed: study / "runs" / f"fake.seed-{seed}_rf-1.0" for seed in (0, 1, 2)}
    for cohort in ("test", "external"):
        diffs = pd.read_csv(study / "study_differences.csv")
        row = diffs[(diffs.cohort == cohort) & (diffs.set == "base_genpos")
                    & (diffs.real_fraction == 1.0)].iloc[0]
        hand = [by_hand(r, cohort, "base_genpos") - by_hand(r, cohort, "base") for r in runs.values()]
        np.testing.assert_allclose([row.estimate, row.ci_low, row.ci_high], t_interval(hand), atol=1e-9)
        curves = pd.read_csv(study / "study_curves.csv")
        c = curves[(curves.cohort == cohort) & (curves.set == "gen") & (curves.real_fraction == 1.0)]
        hand = [by_hand(r, cohort, "gen") for r in runs.values()]
        np.testing.assert_allclose(c[["estimate", "ci_low", "ci_high"]].iloc[0], t_interval(hand),
                                   atol=1e-9)
    claims = pd.read_csv(study / "study_claims.csv")
    c = claims[(claims.claim == "Base+Gen beats Base") & (claims.real_fraction == 0.5)].iloc[0]
    per_run = [pd.read_csv(study / "runs" / f"fake.seed-{s}_rf-0.5" / "07_analysis" / "claims.csv")
               .set_index("claim").estimate["Base+Gen beats Base"] for s in (0, 1, 2)]
    np.testing.assert_allclose([c.estimate, c.ci_low, c.ci_high], t_interval(per_run), atol=1e-9)
    assert c.seeds == 3 and set(claims.columns) >= {"se_seeds", "se_within", "p_holm", "verdict"}
    ruler = pd.read_csv(study / "study_ruler.csv")
    assert len(ruler) == 2 and (ruler.seeds == 3).all()   # real_fraction is 06's: one DDPM condition
    text = md.read_text()
    assert (study / "augmentation_curves.png").stat().st_size > 10_000
    assert text.index("How the intervals are made") < text.index("| cohort")
    assert "Where a set beats Base" in text and "Ruler fractions" in text and NO_ANALYSIS not in text


def test_a_study_without_07_says_so(tmp_path):
    study = fake_study(tmp_path / "no07", seeds=(0, 1), fractions=(1.0,), analysis=False)
    text = write_study_report(study).read_text()
    assert NO_ANALYSIS in text and "not pooled" in text
    assert "| external | base_gen |" in text        # 06's differences are still reported
    with pytest.raises(FileNotFoundError, match="no run folders"):
        write_study_report(tmp_path / "nothing")


def test_one_seed_gives_no_interval(tmp_path):
    study = fake_study(tmp_path / "one", seeds=(0,), fractions=(1.0,))
    write_study_report(study)
    d = pd.read_csv(study / "study_differences.csv")
    assert d.ci_low.isna().all() and (d.verdict == "not evaluable (one DDPM seed)").all()


def test_cxr_study_report_flag(tmp_path, monkeypatch):
    from cxr_nbdev.study import main
    monkeypatch.setenv("CXR_OUT_DIR", str(tmp_path))
    fake_study(tmp_path / "flagged", seeds=(0, 1), fractions=(1.0,), analysis=False)
    cfg = tmp_path / "flagged.yaml"
    cfg.write_text(yaml.safe_dump(dict(study_name="flagged", config="configs/smoke.yaml",
                                       grid=dict(seed=[0, 1]))))
    assert main(["--config", str(cfg), "--report"]) == 0
    assert (tmp_path / "flagged" / "study.md").exists()
    cfg.write_text(yaml.safe_dump(dict(study_name="absent", config="configs/smoke.yaml")))
    assert main(["--config", str(cfg), "--report"]) == 2


@pytest.mark.parametrize("key, value, words", [
    ("real_fraction", 0.0, "(0, 1]"), ("ddpm_real_fraction", 1.5, "(0, 1]"),
    ("synthetic_multiple", -1.0, "[0, inf)"), ("diag_demographics", 3, "must be bool")])
def test_study_parameters_are_checked(key, value, words):
    with pytest.raises(ParamError, match=key) as e: load_params(ROOT / "configs/smoke.yaml", {key: value})
    assert words in str(e.value)


def test_study_parameter_defaults_keep_todays_runs():
    p = load_params(ROOT / "configs/smoke.yaml")
    assert (p.get("real_fraction", 1.0), p.get("ddpm_real_fraction", 1.0)) == (1.0, 1.0)
    from cxr_nbdev.core import pipeline_schema
    s = pipeline_schema()
    assert (s["real_fraction"], s["ddpm_real_fraction"], s["synthetic_multiple"],
            s["diag_demographics"]) == (1.0, 1.0, 0.0, True)
