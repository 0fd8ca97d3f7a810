"""The cohort samplers on one trained DDPM: images/s, FID with its CI, and the phantom ruler's fraction of
the true LVIDd and wall effects, for DDPM-1000, DDIM and diffusers' fast multistep solvers.

    make demo                                          # first: a finished run (03, 06 and a phantom)
    .venv/bin/python bench/bench_samplers.py           # outputs/demo; DDPM-1000 dominates (2,000 passes per image)
    .venv/bin/python bench/bench_samplers.py --run outputs/workshop --n 160 --ddpm-n 64

Every sampler draws the same requested conditions (the first `--n` rows of the run's Gen cohort, 05's
per-batch seeds) at the run's guidance scale, so the rows differ only by the sampler. Measured as 07 measures
the cohort: the FID and KID are in 07's fixed image-quality space (the ruler's CNN trained once on the
reference half of the real-train patients, scaling and PCA fitted there, the null from its held-out part, at
one n); the ruler is 07's 4-conv CNN trained on the phantom's hidden factors (02's copy under the run's
pseudonyms), and the fraction is the slope on the requested condition for the generated images over the slope
on the measured one for real test images, both inside their common support, with a bootstrap CI.
DDPM-1000 costs 1000 U-Net passes per image (two with guidance), so it runs on `--ddpm-n` rows only; its FID
and fractions are on those rows, and the others are also reported on the same rows for a like-for-like test.
"""
import argparse, sys, time, warnings
from pathlib import Path
import numpy as np, pandas as pd, torch, yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from cxr_nbdev.core import load_json, notebook_parameters
from cxr_nbdev.preprocessing import load_cache
from cxr_nbdev.ddpm import load_ddpm, sample, to_uint8
from cxr_nbdev.cohort import batch_seed
from cxr_nbdev import analysis as A

warnings.filterwarnings("ignore")


def factors_file(run: Path) -> Path:
    "02_preprocessing's copy of the phantom's factors.csv, under the run's pseudonyms (what 07 reads)."
    s = load_json(run / "02_preprocessing" / "done.json").get("summary", {})
    f = Path(s.get("factors", ""))
    if not s.get("factors") or not f.is_file():
        raise SystemExit(f"{run}: no phantom factors from 02_preprocessing; the ruler needs a phantom run")
    return f


def analysis_params(run: Path) -> dict:
    "07's parameters for this run: the notebook's defaults updated by the run's params.yaml."
    p = notebook_parameters(ROOT / "nbs" / "07_analysis.ipynb")
    p.update(yaml.safe_load((run / "params.yaml").read_text()) or {})
    return p


def quality_space(p: dict, images, meta) -> tuple:
    "07's real image-quality sets (`quality_split`): `({reference, train, test: uint8 images}, reference rows)`."
    ref_meta, sets = A.quality_split(meta, p["quality_reference_fraction"], p["quality_max_images"], p["seed"])
    pick = lambda d: np.asarray(images[d.cache_idx.to_numpy()])
    real = {"reference": pick(ref_meta), **{k: pick(d) for k, d in sets.items()}}
    return real, ref_meta


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


def measure(imgs, rows, ruler, real, quality, n_boot, seed) -> dict:
    "Ruler fractions (common support, as 07) and FID/KID in 07's space of one sampler's images."
    read_te, d_te, ids = real
    rd, d_gen, row = A.ruler_read(ruler, imgs), A.ruler_design(rows), {}
    for j, (t, drv) in enumerate(A.RULER_FACTORS.items()):
        lo, hi = A.common_support(d_te[drv], d_gen[drv])
        ir, ig = d_te[drv].between(lo, hi).to_numpy(), d_gen[drv].between(lo, hi).to_numpy()
        fr = A.fraction_of_effect(rd[ig, j], d_gen[ig], read_te[ir, j], d_te[ir], ids[ir], drv,
                                  n_boot, 0.95, seed)
        row[f"{drv} fraction"] = A.fmt_ci(fr["fraction"], fr["fraction_ci_low"], fr["fraction_ci_high"], 2)
        row[f"_{drv}"] = (fr["fraction"], fr["fraction_ci_low"], fr["fraction_ci_high"])
    net, feats, qargs = quality
    sets = {**feats, "gen": A.feature_net_features(net, imgs)}   # compared at n = len(imgs)
    q = A.image_quality_table(sets, "CXR feature net (reference split)", **qargs).set_index("comparison")
    for c in ("gen_vs_train", "gen_vs_test"):
        r = q.loc[c]
        row[f"FID {c.replace('_', '-')}"] = A.fmt_ci(r.fid, r.fid_ci_low, r.fid_ci_high, 1)
        row[f"KID {c.replace('_', '-')}"] = A.fmt_ci(r.kid, r.kid_ci_low, r.kid_ci_high, 2)
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
    p = analysis_params(run)
    guidance = p.get("cohort_guidance", 1.0) if args.guidance is None else args.guidance
    seed, bs = p.get("seed", 0), p.get("cohort_batch_size", 16)
    images, meta = load_cache(run / "02_preprocessing" / "cache")
    rm = meta.merge(A.read_factors(factors_file(run)), on="cxr_filename")
    r_tr, r_te = A.subsample(rm[rm.split == "train"], p["ruler_max_train"], seed), rm[rm.split == "test"]
    t0 = time.perf_counter()
    ruler = A.train_ruler(np.asarray(images[r_tr.cache_idx.to_numpy()]), r_tr[list(A.RULER_FACTORS)],
                          p["ruler_epochs"], p["ruler_batch_size"], p["ruler_lr"], seed)
    read_te = A.ruler_read(ruler, np.asarray(images[r_te.cache_idx.to_numpy()]))
    real = (read_te, A.ruler_design(r_te), r_te.patient_id.to_numpy())
    acc = [np.corrcoef(read_te[:, j], r_te[t])[0, 1] for j, t in enumerate(A.RULER_FACTORS)]
    print(f"ruler trained in {time.perf_counter() - t0:.0f} s; r with the true factors on "
          f"{len(r_te)} test images: " + ", ".join(f"{t} {r:.2f}" for t, r in zip(A.RULER_FACTORS, acc)))
    real_q, ref_meta = quality_space(p, images, meta)
    # the net never sees the held-out images of the largest n (those of a smaller n are among them)
    fit = A.reference_split(ref_meta.patient_id, A.quality_n({**real_q, "gen": np.zeros(max(args.n, args.ddpm_n))}),
                            seed)[0]
    fit_meta = A.subsample(ref_meta.iloc[fit], p["ruler_max_train"], seed)
    net = A.train_feature_net(np.asarray(images[fit_meta.cache_idx.to_numpy()]), fit_meta,
                              p["feature_net_epochs"], p["ruler_batch_size"], p["ruler_lr"], seed)
    feats = {k: A.feature_net_features(net, v) for k, v in real_q.items()}
    qargs = dict(kid_subset_size=p["kid_subset_size"], kid_subsets=p["kid_subsets"], nearest_k=p["prdc_nearest_k"],
                 seed=seed, n_boot=args.n_boot, max_components=p["quality_max_components"],
                 images_per_component=p["quality_images_per_component"],
                 groups={"reference": ref_meta.patient_id.to_numpy()}, n_perm=p["quality_permutations"])
    quality = (net, feats, qargs)
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
        r.update(measure(imgs, rows, ruler, real, quality, args.n_boot, seed))
        if name != "ddpm" and args.ddpm_n < n:   # like for like with DDPM-1000's rows
            small = measure(imgs[:args.ddpm_n], rows.iloc[:args.ddpm_n], ruler, real, quality, args.n_boot,
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
            "FID null", "KID gen-vs-train", "lvidd fraction", "wall fraction"]
    print(A.markdown_table(df[[c for c in show if c in df]]))
    print(f"written {out}")


if __name__ == "__main__": main()
