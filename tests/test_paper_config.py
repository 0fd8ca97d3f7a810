"""configs/paper.yaml holds the published settings of Streiffer et al. 2024 (see DESIGN.md), and its dry run works."""
import inspect, json
import yaml
from conftest import ROOT
from test_pipeline import cli

# The published values, each with where it comes from.
PUBLISHED = {
    "n_patients": 24689,              # CheXchoNet: 24,689 patients
    "split_fractions": [0.9, 0.05, 0.05],  # split by patient 90/5/5
    "image_size": 224,                # crop 1:1, bicubic resize to 224 x 224
    "prediction_type": "epsilon",     # the U-Net predicts the noise
    "epochs": 20,                     # AdamW 1e-4, batch 16, 20 epochs
    "batch_size": 16,
    "lr": 0.0001,
    "perceptual_weight": 0.05,        # MSE + 0.05 VGG16 relu3_3 perceptual loss on eps (published code)
    "perceptual_target": "eps",
    "cond_drop_prob": 0.0,            # no classifier-free guidance in the paper
    "cohort_size": 20290,             # Gen: 20,290 images
    "cohort_sampler": "ddpm",         # all 1,000 ancestral steps
    "cohort_spec": {"age": {"shift_z": -0.5, "sd_z": 1.0}, "ivsd": {"shift_z": 0.5, "sd_z": 1.0},
                    "lvidd": {"shift_z": 0.5, "sd_z": 1.0}, "lvpwd": {"shift_z": 0.5, "sd_z": 1.0}, "sex": {"p_male": 0.5}},
    "sets": ["base", "gen", "base_gen", "base_genpos"],
    "n_runs": 5,                      # five runs per training set, probabilities averaged
    "diag_epochs": 10,                # Adam 1e-4, batch 32, 10 epochs, early stopping
    "diag_batch_size": 32,
    "diag_lr": 0.0001,
    "diag_image_size": 0,             # 0 = the cache's 224 px
}


def paper_params():
    from cxr_nbdev.core import pipeline_schema
    return {**pipeline_schema(), **yaml.safe_load((ROOT / "configs" / "paper.yaml").read_text())}


def test_paper_yaml_has_the_published_settings():
    p = paper_params()
    wrong = {k: (p.get(k), v) for k, v in PUBLISHED.items() if p.get(k) != v}
    assert not wrong, f"paper.yaml differs from the paper (ours, published): {wrong}"
    # conditioning: z-scored age + three echo measures, one-hot sex (notebook defaults, not overridden)
    assert sorted(p["cond_continuous"]) == ["age", "ivsd", "lvidd", "lvpwd"] and p["cond_categorical"] == {"sex": ["F", "M"]}


def test_ddpm_schedule_is_the_published_one():
    "T = 1000 steps of the cosine schedule are the model's defaults, which 03 does not override."
    from cxr_nbdev.ddpm import CondDDPM
    d = {k: v.default for k, v in inspect.signature(CondDDPM.__init__).parameters.items()}
    assert d["num_train_timesteps"] == 1000 and d["beta_schedule"] == "squaredcos_cap_v2"


def test_paper_dry_run(outputs_dir):
    "`--dry-run` runs all stages of paper.yaml with its 224 px six-level U-Net, with the counts cut."
    from cxr_nbdev.pipeline import select_stages
    r = cli("--config", "configs/paper.yaml", "--dry-run")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    run = outputs_dir / "paper-dryrun"
    for s in select_stages(): assert (run / s / "done.json").exists(), s
    cfg = json.loads((run / "03_ddpm" / "model" / "config.json").read_text())
    p = paper_params()
    assert cfg["image_size"] == 224 and cfg["block_out_channels"] == p["block_out_channels"], cfg
    assert (run / "results.md").exists()
