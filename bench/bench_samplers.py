"""The cohort samplers on one trained DDPM: images/s, FID with its CI, and the phantom ruler's fraction of
the true LVIDd and wall effects, for DDPM-1000, DDIM and diffusers' fast multistep solvers.

    make demo                                          # first: a finished run (03, 06 and a phantom)
    .venv/bin/python bench/bench_samplers.py           # outputs/demo; DDPM-1000 dominates (2,000 passes per image)
    .venv/bin/python bench/bench_samplers.py --run outputs/workshop --n 160 --ddpm-n 64

Every sampler draws the same requested conditions (the first `--n` rows of the run's Gen cohort, 05's
per-batch seeds) at the run's guidance scale, so the rows differ only by the sampler. Measured as 07 measures
the cohort: the FID uses the Base ensemble's DenseNet-121 features in 07's quality space (real-train scaled
PCA, equal n, bias-corrected bootstrap CI, the null of two real-train halves); the ruler is 07's 4-conv CNN
trained on the phantom's hidden factors, and the fraction is the slope on the requested condition for the
generated images over the slope on the measured one for real test images, with a bootstrap CI.
DDPM-1000 costs 1000 U-Net passes per image (two with guidance), so it runs on `--ddpm-n` rows only; its FID
and fractions are on those rows, and the others are also reported on the same rows for a like-for-like test.
"""
import argparse, sys, time, warnings
from pathlib import Path
import numpy as np, pandas as pd, torch, yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from cxr_nbdev.core import load_json
from cxr_nbdev.preprocessing import load_cache
from cxr_nbdev.ddpm import load_ddpm, sample, to_uint8
from cxr_nbdev.cohort import batch_seed
from cxr_nbdev import analysis as A, diagnostic

warnings.filterwarnings("ignore")


def factors_file(run: Path) -> Path:
    "01_phantom's factors.csv of the run (the phantom's hidden rendering factors)."
    s = load_json(run / "01_phantom" / "done.json").get("summary", {})
    f = Path(s.get("factors") or Path(s.get("data_dir", "")) / "factors.csv")
    if not f.is_file(): raise SystemExit(f"{run}: no phantom factors.csv ({f}); the ruler needs a phantom run")
    return f


def generate(model, rows: pd.DataFrame, sampler: str, steps: int, guidance: float, seed: int,
             batch_size: int) -> tuple[np.ndarray, float]:
    "uint8 images for `rows` with 05's per-batch seeds, and the seconds it took."
    t0, out = time.perf_counter(), []
    for b in range(0, len(rows), batch_size):
        g = torch.Generator().manual_seed(batch_seed(seed, b // batch_size))
        x = sample(model, rows.iloc[b:b + batch_size], sampler, steps, generator=g,
                   guidance_scale=guidance, batch_size=batch_size, progress=False)
        out.append(to_uint8(x))
    return np.concatenate(out), time.perf_counter() - t0


def measure(imgs, rows, ruler, real, feats, models, n_boot, seed) -> dict:
    "Ruler fractions and FIDs of one sampler's images (`feats`: real train/test features of `models`)."
    read_te, d_te, ids = real
    rd, row = A.ruler_read(ruler, imgs), {}
    for j, (t, drv) in enumerate(A.RULER_FACTORS.items()):
        fr = A.fraction_of_effect(rd[:, j], A.ruler_design(rows), read_te[:, j], d_te, ids, drv,
                                  n_boot, 0.95, seed)
        row[f"{drv} fraction"] = A.fmt_ci(fr["fraction"], fr["fraction_ci_low"], fr["fraction_ci_high"], 2)
        row[f"_{drv}"] = (fr["fraction"], fr["fraction_ci_low"], fr["fraction_ci_high"])
    sets = {"train": feats["train"], "test": feats["test"],
            "gen": diagnostic.features(models, imgs)}
    q = A.image_quality_table(sets, "Base DenseNet-121", n_boot=n_boot, seed=seed).set_index("comparison")
    for c in ("gen_vs_train", "gen_vs_test"):
        r = q.loc[c]
        row[f"FID {c.replace('_', '-')}"] = A.fmt_ci(r.fid, r.fid_ci_low, r.fid_ci_high, 1)
        row[f"_{c}"] = (r.fid, r.fid_ci_low, r.fid_ci_high)
    row["FID null"], row["PCA k"] = round(float(q.fid_null.iloc[0]), 1), int(q.pca_k.iloc[0])
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=str(ROOT / "outputs" / "demo"), help="a finished run folder")
    ap.add_argument("--n", type=int, default=160, help="images per fast sampler")
    ap.add_argument("--ddpm-n", type=int, default=64, help="images for DDPM-1000 (1000 passes each)")
    ap.add_argument("--samplers", nargs="+", default=["ddpm:1000", "ddim:50", "ddim:20", "dpmsolver++:20",
                                                       "unipc:20", "dpmsolver++:10"])
    ap.add_argument("--guidance", type=float, default=None, help="default: the run's cohort_guidance")
    ap.add_argument("--n-boot", type=int, default=500)
    ap.add_argument("--out", default="", help="CSV of the table (default: <run>/bench_samplers.csv)")
    args = ap.parse_args(argv)
    run = Path(args.run)
    p = yaml.safe_load((run / "params.yaml").read_text())
    guidance = p.get("cohort_guidance", 1.0) if args.guidance is None else args.guidance
    seed, bs = p.get("seed", 0), p.get("cohort_batch_size", 16)
    images, meta = load_cache(run / "02_preprocessing" / "cache")
    rm = meta.merge(A.read_factors(factors_file(run)), on="cxr_filename")
    r_tr, r_te = A.subsample(rm[rm.split == "train"], p.get("ruler_max_train", 2200), seed), rm[rm.split == "test"]
    t0 = time.perf_counter()
    ruler = A.train_ruler(np.asarray(images[r_tr.cache_idx.to_numpy()]), r_tr[list(A.RULER_FACTORS)],
                          p.get("ruler_epochs", 12), p.get("ruler_batch_size", 64), p.get("ruler_lr", 2e-3), seed)
    read_te = A.ruler_read(ruler, np.asarray(images[r_te.cache_idx.to_numpy()]))
    real = (read_te, A.ruler_design(r_te), r_te.patient_id.to_numpy())
    acc = [np.corrcoef(read_te[:, j], r_te[t])[0, 1] for j, t in enumerate(A.RULER_FACTORS)]
    print(f"ruler trained in {time.perf_counter() - t0:.0f} s; r with the true factors on "
          f"{len(r_te)} test images: " + ", ".join(f"{t} {r:.2f}" for t, r in zip(A.RULER_FACTORS, acc)))
    models = diagnostic.load_ensemble(run / "06_diagnostic", "base")
    cap = p.get("quality_max_images", 1000)
    feats = {k: diagnostic.features(models, np.asarray(images[A.subsample(meta[meta.split == k], n, seed)
                                                                 .cache_idx.to_numpy()]))
             for k, n in (("train", 2 * cap), ("test", cap))}
    model = load_ddpm(run / "03_ddpm" / "model").eval()
    req = pd.read_csv(run / "05_cohort" / "gen" / "requested.csv")
    rows_all = []
    for spec in args.samplers:
        name, steps = spec.split(":")[0], int(spec.split(":")[1])
        n = args.ddpm_n if name == "ddpm" else args.n
        rows = req.iloc[:n].reset_index(drop=True)
        imgs, secs = generate(model, rows, name, steps, guidance, seed, bs)
        calls = (1000 if name == "ddpm" else steps) * (2 if guidance != 1 else 1)
        r = dict(sampler=name, steps=1000 if name == "ddpm" else steps, guidance=guidance, n=n,
                 unet_passes_per_image=calls, images_per_s=round(n / secs, 3))
        r.update(measure(imgs, rows, ruler, real, feats, models, args.n_boot, seed))
        if name != "ddpm" and args.ddpm_n < n:   # like for like with DDPM-1000's rows
            small = measure(imgs[:args.ddpm_n], rows.iloc[:args.ddpm_n], ruler, real, feats, models, args.n_boot,
                            seed)
            r.update({f"{k} (first {args.ddpm_n})": v for k, v in small.items() if not k.startswith("_")})
        rows_all.append(r)
        print({k: v for k, v in r.items() if not k.startswith("_")}, flush=True)
    df = pd.DataFrame(rows_all)
    ddpm = df[df.sampler == "ddpm"]
    if len(ddpm): df["cost vs DDPM-1000"] = (ddpm.unet_passes_per_image.iloc[0] / df.unet_passes_per_image).round(1)
    out = Path(args.out or run / "bench_samplers.csv")
    df.drop(columns=[c for c in df if c.startswith("_")]).to_csv(out, index=False)
    show = ["sampler", "steps", "n", "images_per_s", "cost vs DDPM-1000", "FID gen-vs-train", "FID gen-vs-test",
            "FID null", "lvidd fraction", "wall fraction"]
    print(A.markdown_table(df[[c for c in show if c in df]]))
    print(f"written {out}")


if __name__ == "__main__": main()
