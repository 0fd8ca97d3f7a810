"""One command, one table: throughput of every stage of cxr_nbdev on this machine, at the demo configuration.

    .venv/bin/python bench/bench.py            # or: make bench      (about 4-6 min on a 2-core CPU)
    .venv/bin/python bench/bench.py --quick    # smaller workloads, noisier figures

Measured (not extrapolated) unless the row says so:
- phantom rendering (01) and preprocessing into the cache (02), images/s at 64 px;
- DDPM training images/s with the demo U-Net: our `DDPMTrainer` step (Accelerate, AdamW, cosine LR, grad
  clipping, EMA) against a plain reference step written like the diffusers `train_unconditional.py` example
  (UNet2DModel + DDPMScheduler.add_noise + MSE + AdamW), so the trainer's overhead is visible;
- sampling images/s: DDIM-50 measured end to end; DDPM-1000 from a measured 50-step run of the ancestral
  sampler, scaled by 1000/50 (the U-Net dominates, scheduler arithmetic is negligible);
- DDIM inversion images/s (plain, 50 steps) and with 2 fixed-point iterations;
- diagnostic DenseNet-121 training images/s at the demo input size (batch 32).
The figures vary by +-30-50% from run to run on a shared CPU; compare ratios within one run.
"""
import argparse, sys, tempfile, time, warnings
from pathlib import Path
import numpy as np, torch, torch.nn.functional as F, yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from cxr_nbdev.core import notebook_parameters, get_device


def demo_params() -> dict:
    "The demo configuration: notebook defaults overridden by configs/demo.yaml."
    p = {}
    for nb in sorted((ROOT / "nbs").glob("0[1-7]_*.ipynb")): p.update(notebook_parameters(nb))
    p.update(yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text()))
    return p


def timed(fn, repeat=1):
    "Seconds per call of fn (after one untimed warm-up call)."
    fn(); t0 = time.perf_counter()
    for _ in range(repeat): fn()
    return (time.perf_counter() - t0) / repeat


def bench_data(p, n_patients, rows):
    from cxr_nbdev.phantom import make_cohort, ct_projections
    from cxr_nbdev.preprocessing import build_cache
    ct_projections()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter(); meta = make_cohort(Path(tmp) / "ph", n_patients, 1.0, 64, seed=0, n_workers=0); t = time.perf_counter() - t0
        rows.append(("phantom rendering + DICOM write, 64 px", len(meta) / t, "images/s", ""))
        t0 = time.perf_counter(); im, _ = build_cache(meta, Path(tmp) / "ph", Path(tmp) / "cache", 64, n_workers=0, split="train")
        t = time.perf_counter() - t0
        rows.append(("preprocessing DICOM -> 64 px cache", len(im) / t, "images/s", ""))


def make_ddpm(p):
    from cxr_nbdev.ddpm import CondDDPM, ConditionSchema, PAPER_TRAIN_STATS
    schema = ConditionSchema(mean=PAPER_TRAIN_STATS["mean"], std=PAPER_TRAIN_STATS["std"])
    return CondDDPM(image_size=p["image_size"], block_out_channels=p["block_out_channels"], layers_per_block=p["layers_per_block"],
                    attention_levels=p["attention_levels"], cond_schema=schema.to_dict(), cond_hidden=p["cond_hidden"],
                    norm_num_groups=min(32, p["block_out_channels"][0] // 2),
                    prediction_type=p["prediction_type"], time_scale_shift=p["time_scale_shift"],
                    cond_out_act=p["cond_out_act"])


def bench_ddpm_train(p, dev, steps, rows):
    from cxr_nbdev.ddpm import DDPMTrainer, TrainConfig
    S, B = p["image_size"], p["batch_size"]
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (8 * B, S, S), dtype=torch.uint8, generator=g).numpy()
    cond = torch.randn(len(imgs), 6, generator=g)
    cfg = TrainConfig(train_steps=steps + 2, batch_size=B, lr=p["lr"], perceptual_weight=0.0, progress=False,
                      channels_last=p["channels_last"] and dev.type == "cpu")
    tr = DDPMTrainer(make_ddpm(p), imgs, cond, cfg=cfg, device=dev.type)
    tr.fit(until=2)
    t0 = time.perf_counter(); tr.fit(until=steps + 2); ours = steps * B / (time.perf_counter() - t0)
    # the reference: the diffusers example's inner loop, same U-Net, same batch, no EMA / clipping / schedule
    model = make_ddpm(p).to(dev)
    if p["channels_last"] and dev.type == "cpu": model = model.to(memory_format=torch.channels_last)
    sched, opt = model.scheduler, torch.optim.AdamW(model.parameters(), lr=p["lr"])
    x0 = torch.from_numpy(imgs[:B]).float().div(127.5).sub(1)[:, None].to(dev); c = cond[:B].to(dev)
    def step():
        noise = torch.randn_like(x0); t = torch.randint(0, sched.config.num_train_timesteps, (B,), device=dev)
        loss = F.mse_loss(model(sched.add_noise(x0, noise, t), t, c), noise)
        loss.backward(); opt.step(); opt.zero_grad()
    ref = B / timed(step, repeat=steps)
    rows.append(("DDPM training step, ours (Accelerate+EMA+clip+LR)", ours, "images/s", f"{ours / ref:.2f}x of reference"))
    rows.append(("DDPM training step, plain diffusers example loop", ref, "images/s", ""))


def bench_sampling(p, dev, n, rows):
    from cxr_nbdev.ddpm import sample_ddim, _denoise, _step_kw
    from tqdm.auto import tqdm
    from diffusers import DDPMScheduler
    model = make_ddpm(p).to(dev).eval(); cond = torch.randn(n, 6)
    t_ddim = timed(lambda: sample_ddim(model, cond, steps=50, generator=torch.Generator().manual_seed(0), progress=False, batch_size=n))
    # ancestral DDPM: the first 50 of its 1,000 steps through the same sampling loop (each step costs one U-Net call)
    s = DDPMScheduler.from_config(model.scheduler.config); s.set_timesteps(s.config.num_train_timesteps)
    s.timesteps = s.timesteps[:50]
    def ddpm50():
        g = torch.Generator().manual_seed(0)
        with torch.no_grad(): _denoise(model, s, cond, g, 1.0, tqdm(disable=True), _step_kw("ddpm", g, 0.0))
    t50 = timed(ddpm50)
    t_ddpm = t50 * 1000 / 50
    rows.append(("sampling DDIM-50", n / t_ddim, "images/s", ""))
    rows.append(("sampling DDPM-1000 (50 steps measured, x20)", n / t_ddpm, "images/s", f"DDIM-50 is {t_ddpm / t_ddim:.1f}x faster"))


def bench_inversion(p, dev, n, rows):
    from cxr_nbdev.inversion import ddim_invert
    model = make_ddpm(p).to(dev).eval(); S = p["image_size"]
    x = torch.rand(n, 1, S, S, generator=torch.Generator().manual_seed(0)) * 2 - 1; cond = torch.randn(n, 6)
    plain = timed(lambda: ddim_invert(model, x, cond, steps=50, progress=False))
    fp = timed(lambda: ddim_invert(model, x, cond, steps=50, fixed_point_iters=2, progress=False))
    rows.append(("DDIM inversion, 50 steps (plain)", n / plain, "images/s", ""))
    rows.append(("DDIM inversion, 50 steps + 2 fixed-point iters", n / fp, "images/s", f"{fp / plain:.1f}x the cost of plain"))


def bench_diagnostic(p, dev, steps, rows):
    from cxr_nbdev.diagnostic import DiagnosticNet, diagnostic_loss
    S = p.get("diag_image_size") or p["image_size"]; B = p["diag_batch_size"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore"); model = DiagnosticNet(image_size=S).to(dev)
    if dev.type == "cpu": model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    x, d, y = torch.rand(B, 1, S, S, generator=g), torch.randn(B, 3, generator=g), torch.rand(B, 3, generator=g) + 1
    def step():
        loss = diagnostic_loss(*model(x.to(dev, memory_format=torch.channels_last), d.to(dev)), y.to(dev))
        opt.zero_grad(); loss.backward(); opt.step()
    rows.append((f"diagnostic DenseNet-121 training, {S} px", B / timed(step, repeat=steps), "images/s", ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller workloads (noisier)")
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()
    p, dev = demo_params(), get_device(a.device)
    q = a.quick
    rows, t0 = [], time.time()
    for name, fn in [("data", lambda: bench_data(p, 60 if q else 200, rows)),
                     ("ddpm training", lambda: bench_ddpm_train(p, dev, 2 if q else 6, rows)),
                     ("sampling", lambda: bench_sampling(p, dev, 4 if q else 8, rows)),
                     ("inversion", lambda: bench_inversion(p, dev, 2 if q else 4, rows)),
                     ("diagnostic", lambda: bench_diagnostic(p, dev, 2 if q else 6, rows))]:
        print(f"... {name}", file=sys.stderr, flush=True); fn()
    print(f"\ncxr_nbdev benchmark, demo configuration ({p['image_size']} px, U-Net {p['block_out_channels']}), "
          f"device {dev}, torch {torch.__version__}, {torch.get_num_threads()} threads, {time.time() - t0:.0f} s\n")
    w = max(len(r[0]) for r in rows)
    print(f"| {'what':<{w}} | {'throughput':>10} | unit     | note |\n|{'-' * (w + 2)}|{'-' * 12}|----------|------|")
    for what, v, unit, note in rows: print(f"| {what:<{w}} | {v:10.2f} | {unit:<8} | {note} |")


if __name__ == "__main__":
    main()
