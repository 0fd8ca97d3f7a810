"""configs/paper.yaml holds the published settings of Streiffer et al. 2024 (see DESIGN.md), builds the
authors' U-Net, asks for the published Gen cohort, and its dry run works."""
import inspect, json
import pytest, torch, yaml
from conftest import ROOT
from test_pipeline import cli

# The published values, each with where it comes from.
PUBLISHED = {
    "n_patients": 24689,              # CheXchoNet: 24,689 patients
    "split_fractions": [0.9, 0.05, 0.05],  # split by patient 90/5/5
    "image_size": 224,                # crop 1:1, bicubic resize to 224 x 224
    # the authors' U-Net: cstreiffer/cxr_ddpm, src/train/models.py, load_class_diffusion_model_large,
    # used by src/train/training_configs/class_diffusion_large_224.yaml
    "block_out_channels": [128, 256, 256, 512, 512, 1024],
    "attention_levels": [False, False, False, True, True, False],  # AttnDown at 28 and 14 px
    "layers_per_block": 2,
    "cond_hidden": 512,               # StateEmbedding: Linear-SiLU-Linear-SiLU, 4 x 128 wide
    "cond_out_act": True,
    "time_scale_shift": False,        # diffusers' default resnet_time_scale_shift
    "prediction_type": "epsilon",     # the U-Net predicts the noise
    "epochs": 20,                     # AdamW 1e-4, batch 16, 20 epochs, lr_warmup_steps 1000
    "batch_size": 16,
    "lr": 0.0001,
    "warmup_steps": 1000,
    "grad_clip": 1.0,                 # train_model.py: accelerator.clip_grad_norm_(..., 1.0)
    "ema_decay": 0.0,                 # train_model.py saves the raw weights: no EMA
    "perceptual_weight": 0.05,        # MSE + 0.05 VGG16 relu3_3 perceptual loss on eps (published code)
    "perceptual_target": "eps",
    "cond_drop_prob": 0.0,            # no classifier-free guidance in the paper
    "cohort_size": 20290,             # Gen: 20,290 images
    "cohort_sampler": "ddpm",         # all 1,000 ancestral steps
    # the published Gen cohort (Results, first section; 49.5% women)
    "cohort_spec": {"age": {"mean": 58.6, "sd": 13.4}, "ivsd": {"mean": 1.26, "sd": 0.32},
                    "lvidd": {"mean": 5.01, "sd": 0.86}, "lvpwd": {"mean": 1.21, "sd": 0.29},
                    "sex": {"p_male": 0.505}},
    "sets": ["base", "gen", "base_gen", "base_genpos"],
    "ensemble_size": 5,               # five runs per training set, probabilities averaged
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
    assert sorted(p["cond_continuous"]) == ["age", "ivsd", "lvidd", "lvpwd"]
    assert p["cond_categorical"] == {"sex": ["F", "M"]}
    assert p["mixed_precision"] in ("fp16", "bf16")  # the authors: fp16; bf16: see the YAML's comment


def test_ddpm_schedule_is_the_published_one():
    "T = 1000 steps of the cosine schedule are the model's defaults, which 03 does not override."
    from cxr_nbdev.ddpm import CondDDPM
    d = {k: v.default for k, v in inspect.signature(CondDDPM.__init__).parameters.items()}
    assert d["num_train_timesteps"] == 1000 and d["beta_schedule"] == "squaredcos_cap_v2"


def authors_network(n_state: int):
    "The authors' U-Net and state MLP, written out as in cstreiffer/cxr_ddpm (models.py), with diffusers."
    from diffusers import UNet2DModel
    unet = UNet2DModel(
        sample_size=224, in_channels=1, out_channels=1, layers_per_block=2,
        block_out_channels=(128, 256, 256, 512, 512, 1024),
        down_block_types=("DownBlock2D", "DownBlock2D", "DownBlock2D",
                          "AttnDownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D",
                        "UpBlock2D", "UpBlock2D", "UpBlock2D"),
        class_embed_type="identity")
    state_emb = torch.nn.Sequential(torch.nn.Linear(n_state, 128 * 4), torch.nn.SiLU(),
                                    torch.nn.Linear(128 * 4, 128 * 4), torch.nn.SiLU())
    return unet, state_emb


def paper_model():
    "CondDDPM built from paper.yaml as 03 builds it (03's parameters cell and model cell)."
    from cxr_nbdev.ddpm import CondDDPM, ConditionSchema
    p = paper_params()
    schema = ConditionSchema(p["cond_continuous"], p["cond_categorical"],
                             {c: 0.0 for c in p["cond_continuous"]}, {c: 1.0 for c in p["cond_continuous"]})
    return CondDDPM(image_size=p["image_size"], block_out_channels=p["block_out_channels"],
                    layers_per_block=p["layers_per_block"], attention_levels=p["attention_levels"],
                    cond_schema=schema.to_dict(), cond_hidden=p["cond_hidden"],
                    prediction_type=p["prediction_type"], norm_num_groups=min(32, p["block_out_channels"][0] // 2),
                    time_scale_shift=p["time_scale_shift"], cond_out_act=p["cond_out_act"])


def n_params(m) -> int: return sum(q.numel() for q in m.parameters())


def test_paper_unet_is_the_authors():
    "Same blocks, same tensors, same parameter count as the authors' network built directly (on the meta device)."
    with torch.device("meta"):
        ours = paper_model()
        unet, state_emb = authors_network(ours.schema.dim)
    keys = ("down_block_types", "up_block_types", "block_out_channels", "layers_per_block", "class_embed_type",
            "norm_num_groups", "attention_head_dim", "resnet_time_scale_shift", "sample_size", "in_channels",
            "out_channels", "time_embedding_type", "act_fn", "add_attention", "dropout")
    for k in keys: assert ours.unet.config[k] == unet.config[k], (k, ours.unet.config[k], unet.config[k])
    shapes = lambda m: {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes(ours.unet) == shapes(unet)
    assert [type(l) for l in ours.cond_mlp] == [type(l) for l in state_emb]
    assert shapes(ours.cond_mlp) == shapes(state_emb)
    assert n_params(ours) == n_params(unet) + n_params(state_emb)
    print(f"paper U-Net {n_params(unet):,} + condition MLP {n_params(state_emb):,} = {n_params(ours):,} parameters")


def test_paper_cohort_is_the_published_gen_cohort():
    "05 reads paper.yaml's cohort_spec as normals (before truncation) with the published means and SDs."
    from types import SimpleNamespace
    from cxr_nbdev.cohort import cohort_distributions
    scaler = SimpleNamespace(mean={"age": 62.3, "ivsd": 1.12, "lvidd": 4.60, "lvpwd": 1.07},
                             std={"age": 16.0, "ivsd": 0.27, "lvidd": 0.67, "lvpwd": 0.23})
    dists = cohort_distributions(paper_params()["cohort_spec"], scaler)
    published = {"age": (58.6, 13.4), "ivsd": (1.26, 0.32), "lvidd": (5.01, 0.86), "lvpwd": (1.21, 0.29)}
    for k, (mean, sd) in published.items():
        assert (dists[k].kwds["loc"], dists[k].kwds["scale"]) == (mean, sd), (k, dists[k].kwds)
    assert dists["sex"] == 0.505  # 49.5% women


@pytest.mark.slow
def test_paper_dry_run(outputs_dir):
    """`--dry-run` runs all stages of paper.yaml with its 224 px six-level U-Net, with the counts cut (and the
    lessons left out). The longest single test (minutes): CI runs it (CXR_SLOW=1); a local `make test` skips it."""
    from cxr_nbdev.pipeline import select_stages
    r = cli("--config", "configs/paper.yaml", "--dry-run")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    run = outputs_dir / "paper-dryrun"
    for s in select_stages(): assert (run / s / "done.json").exists(), s
    cfg = json.loads((run / "03_ddpm" / "model" / "config.json").read_text())
    p = paper_params()
    assert cfg["image_size"] == 224 and cfg["block_out_channels"] == p["block_out_channels"], cfg
    assert cfg["attention_levels"] == p["attention_levels"] and cfg["cond_out_act"] is True, cfg
    assert (run / "results.md").exists()
