"""How long the paper-scale run (configs/paper.yaml) takes on a cloud GPU: an estimate from FLOP counts.

    .venv/bin/python bench/paper_estimate.py                 # about 1 min on a 2-core CPU
    .venv/bin/python bench/paper_estimate.py --mfu 0.2 0.4   # the sustained fractions of peak to show

What is measured here, on this machine: the forward FLOPs per image of the paper's networks (the
authors' U-Net of cstreiffer/cxr_ddpm, 128-256-256-512-512-1024), built from configs/paper.yaml as 03 and 06
build them (torch.utils.flop_counter counts them), and the
CPU seconds of one U-Net training step at 224 px. What is assumed: the GPU's dense bf16 peak (vendor
figures) and the fraction of it a run sustains (MFU). Convolutional U-Nets at batch 16 typically
sustain 20-40 percent; the table shows both ends. Backward is counted as twice the forward.
The image counts come from the config: CheXchoNet-sized train split, 20 epochs, 20,290 DDPM-1000
samples, 4 training sets x 5 runs x 10 epochs of DenseNet-121, each set the size of Base+Gen (06).

The paper-scale study (issue 22; `--study-*` options) is the paper config over a grid of DDPM seeds, real
fractions and synthetic multiples: per seed one DDPM (03, on all real training data) and one Gen cohort
sampled with the fast sampler, large enough for the largest multiple at the largest fraction (05); per
run one 06 (4 sets x replicates x ensemble models of n_real (1 + m) images each) and 07's scoring.
"""
import argparse, sys, time
from pathlib import Path
import torch, yaml
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from cxr_nbdev.core import notebook_parameters
from cxr_nbdev.ddpm import CondDDPM, vgg16_relu3_3
from cxr_nbdev.diagnostic import DiagnosticNet

# A fast cohort sampler (03's `sample`, 05's `cohort_sampler`), compared with DDPM-1000 on one trained model
# by bench/bench_samplers.py: one U-Net pass per step (the paper samples without guidance).
FAST_SAMPLER, FAST_STEPS = "DPM-Solver++ 20 steps", 20
PEAK_BF16_TFLOPS = {"A100 (312 TFLOP/s bf16)": 312.0, "H100 SXM (989 TFLOP/s bf16)": 989.0}


def paper_params() -> dict:
    p = {}
    for nb in sorted((ROOT / "nbs").glob("0[1-7]_*.ipynb")): p.update(notebook_parameters(nb))
    p.update(yaml.safe_load((ROOT / "configs" / "paper.yaml").read_text()))
    return p


def forward_flops(fn) -> float:
    with FlopCounterMode(display=False) as fc: fn()
    return float(fc.get_total_flops())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mfu", type=float, nargs="+", default=[0.2, 0.4], help="sustained fractions of the bf16 peak")
    ap.add_argument("--study-seeds", type=int, default=5, help="DDPM seeds of the paper-scale study")
    ap.add_argument("--study-fractions", type=float, nargs="+", default=[0.1, 0.25, 0.5, 1.0],
                    help="its real_fraction values")
    ap.add_argument("--study-multiples", type=float, nargs="+", default=[0.5, 1.0, 2.0],
                    help="its synthetic_multiple values")
    ap.add_argument("--study-replicates", type=int, default=2, help="diagnostic replicates per set and run")
    ap.add_argument("--study-ensemble", type=int, default=1, help="models per replicate ensemble")
    args = ap.parse_args(argv)
    p = paper_params(); S = p["image_size"]
    unet = CondDDPM(image_size=S, block_out_channels=p["block_out_channels"], layers_per_block=p["layers_per_block"],
                    attention_levels=p["attention_levels"], cond_hidden=p["cond_hidden"],
                    norm_num_groups=min(32, p["block_out_channels"][0] // 2), cond_out_act=p["cond_out_act"])
    n_unet = sum(q.numel() for q in unet.parameters())
    x, c = torch.randn(1, 1, S, S), torch.zeros(1, unet.schema.dim)
    with torch.no_grad(): f_unet = forward_flops(lambda: unet(x, torch.tensor([500]), c))
    vgg = vgg16_relu3_3(None)[0]  # FLOPs do not depend on the weights
    with torch.no_grad(): f_vgg = forward_flops(lambda: vgg(torch.randn(1, 3, S, S)))
    diag = DiagnosticNet().eval()
    with torch.no_grad(): f_diag = forward_flops(lambda: diag(torch.rand(1, 1, S, S), torch.zeros(1, 3)))

    # CPU seconds of one real training step of the paper U-Net (batch 2, fp32, MSE only)
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-4); xb, cb = torch.randn(2, 1, S, S), torch.zeros(2, unet.schema.dim)
    def step():
        loss = torch.nn.functional.mse_loss(unet(xb, torch.tensor([10, 900]), cb), xb); loss.backward(); opt.step(); opt.zero_grad()
    step(); t0 = time.perf_counter(); step(); cpu_step = time.perf_counter() - t0

    n_images = p["n_patients"] * p["images_per_patient"]; n_train = n_images * p["split_fractions"][0]
    n_models = p["ensemble_size"] * p["replicates"]  # 06: models per training set (07 pools them all)
    n_gen = p["cohort_size"]; n_set = min(n_gen, n_train) + n_gen  # 06: every set has the size of Base+Gen
    pw = p["perceptual_weight"] > 0
    work = {  # stage: total FLOPs
        "03 DDPM training": p["epochs"] * n_train * (3 * f_unet + (4 * f_vgg if pw else 0)),
        "05 DDPM-1000 sampling": n_gen * 1000 * f_unet,
        f"05 instead with {FAST_SAMPLER} (not in the total)": n_gen * FAST_STEPS * f_unet,
        "06 DenseNet-121, 4 sets x replicates x runs": len(p["sets"]) * n_models * p["diag_epochs"] * n_set * 3 * f_diag,
        "04 inversion (+ fixed point)": p["inversion_images"] * sum(p["inversion_steps"]) * f_unet
                                        + p["inversion_images"] * p["compare_steps"] * (1 + p["fixed_point_iters"]) * 2 * f_unet,
        "07 scoring Gen with the Base ensemble": p["score_max_images"] * n_models * f_diag,
    }
    print(f"paper configuration: {S} px, U-Net {p['block_out_channels']} ({n_unet / 1e6:.1f} M parameters), "
          f"{n_train:,.0f} training images x {p['epochs']} epochs, {n_gen:,} DDPM-1000 samples, "
          f"{len(p['sets'])} sets x {p['replicates']} replicates x {p['ensemble_size']} runs x {p['diag_epochs']} epochs of {n_set:,.0f} images")
    print(f"forward GFLOPs per image: U-Net {f_unet / 1e9:.1f}, VGG16 to relu3_3 {f_vgg / 1e9:.1f}, DenseNet-121 {f_diag / 1e9:.1f}")
    print(f"measured on this CPU: one paper U-Net training step of 2 images takes {cpu_step:.1f} s "
          f"({2 * 3 * f_unet / cpu_step / 1e9:.0f} GFLOP/s sustained)")
    print("\n| stage | PFLOPs | " + " | ".join(f"{g}, MFU {m:.0%}" for g in PEAK_BF16_TFLOPS for m in args.mfu) + " |")
    print("|---|---|" + "---|" * (len(PEAK_BF16_TFLOPS) * len(args.mfu)))
    total = sum(v for k, v in work.items() if "not in the total" not in k)
    for name, fl in list(work.items()) + [("total", total)]:
        hours = [fl / (peak * 1e12 * m) / 3600 for peak in PEAK_BF16_TFLOPS.values() for m in args.mfu]
        print(f"| {name} | {fl / 1e15:,.0f} | " + " | ".join(f"{h:,.1f} h" for h in hours) + " |")
    print(f"\n(this CPU at the measured rate would need {total / (2 * 3 * f_unet / cpu_step) / 3600 / 24 / 365:.1f} years)")
    study_table(p, args, n_train, f_unet, f_vgg, f_diag)


def study_work(p: dict, args, n_train: float, f_unet: float, f_vgg: float, f_diag: float) -> dict:
    "FLOPs of the paper-scale study: {part: FLOPs}, and the FLOPs of one seed's 03 + 05 (the longest task)."
    pw, seeds, fr, mult = p["perceptual_weight"] > 0, args.study_seeds, args.study_fractions, args.study_multiples
    n_gen = max(mult) * max(fr) * n_train                       # one Gen cohort per seed serves every run
    ddpm = p["epochs"] * n_train * (3 * f_unet + (4 * f_vgg if pw else 0))
    cohort = n_gen * FAST_STEPS * f_unet
    inversion = p["inversion_images"] * (sum(p["inversion_steps"])
                                         + p["compare_steps"] * (1 + p["fixed_point_iters"]) * 2) * f_unet
    models = len(p["sets"]) * args.study_replicates * args.study_ensemble
    diag = sum(models * p["diag_epochs"] * f * n_train * (1 + m) * 3 * f_diag for f in fr for m in mult)
    score = len(fr) * len(mult) * p["score_max_images"] * models * f_diag
    return {f"03 DDPM training x {seeds} seeds": seeds * ddpm,
            f"04 inversion x {seeds} seeds": seeds * inversion,
            f"05 {n_gen:,.0f} Gen images ({FAST_SAMPLER}) x {seeds} seeds": seeds * cohort,
            f"06 {models} models x {len(fr) * len(mult)} runs x {seeds} seeds": seeds * diag,
            "07 scoring": seeds * score}, ddpm + inversion + cohort


def study_table(p: dict, args, n_train, f_unet, f_vgg, f_diag):
    work, longest = study_work(p, args, n_train, f_unet, f_vgg, f_diag)
    n_runs = args.study_seeds * len(args.study_fractions) * len(args.study_multiples)
    print(f"\npaper-scale study: {n_runs} runs = {args.study_seeds} DDPM seeds x real_fraction "
          f"{args.study_fractions} x synthetic_multiple {args.study_multiples}; GPU hours (one GPU per task):")
    print("\n| part | PFLOPs | " + " | ".join(f"{g}, MFU {m:.0%}" for g in PEAK_BF16_TFLOPS for m in args.mfu) + " |")
    print("|---|---|" + "---|" * (len(PEAK_BF16_TFLOPS) * len(args.mfu)))
    rows = list(work.items()) + [("total", sum(work.values())), ("longest task: one seed's 03 to 05", longest)]
    for name, fl in rows:
        hours = [fl / (peak * 1e12 * m) / 3600 for peak in PEAK_BF16_TFLOPS.values() for m in args.mfu]
        print(f"| {name} | {fl / 1e15:,.0f} | " + " | ".join(f"{h:,.1f} h" for h in hours) + " |")
    print(f"(wall time on N GPUs: about max(total / N, the longest task) plus that seed's 06 runs)")


if __name__ == "__main__": main()
