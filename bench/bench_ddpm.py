"""Benchmark the conditional DDPM of 03_ddpm: training images/s and sampling images/s, with peak memory.

    .venv/bin/python bench/bench_ddpm.py                    # demo configuration on this machine (CPU: ~2-3 min)
    .venv/bin/python bench/bench_ddpm.py --config paper     # the paper's 224 px U-Net (meant for a GPU)

Training: `DDPMTrainer` steps (Accelerate, AdamW, EMA) on random images at the configuration's size and
batch, with and without the VGG16 perceptual term. Sampling: the U-Net's cost per denoising step is
measured on a small batch (one DDIM-`--measure-steps` run); DDPM-1000 and DDIM-50/100/250 images/s are
that cost times the number of steps (the schedulers' own arithmetic is negligible beside the U-Net).
Peak memory: `torch.cuda.max_memory_allocated` on a GPU, the process's max RSS on the CPU.
"""
import argparse, resource, sys, time, warnings
from pathlib import Path
import numpy as np, torch, yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from cxr_nbdev.core import notebook_parameters, get_device
from cxr_nbdev.ddpm import CondDDPM, DDPMTrainer, TrainConfig, PerceptualLoss, vgg16_relu3_3, sample_ddim, PAPER_TRAIN_STATS, ConditionSchema


def settings(config: str) -> dict:
    p = notebook_parameters(ROOT / "nbs" / "03_ddpm.ipynb")
    p.update({k: v for k, v in (yaml.safe_load((ROOT / "configs" / f"{config}.yaml").read_text()) or {}).items() if k in p})
    p["image_size"] = {"smoke": 32, "demo": 64, "paper": 224}[config]
    return p


def make_model(p) -> CondDDPM:
    schema = ConditionSchema(mean=PAPER_TRAIN_STATS["mean"], std=PAPER_TRAIN_STATS["std"])
    return CondDDPM(image_size=p["image_size"], block_out_channels=p["block_out_channels"], layers_per_block=p["layers_per_block"],
                    attention_levels=p["attention_levels"], cond_schema=schema.to_dict(), cond_hidden=p["cond_hidden"],
                    norm_num_groups=min(32, p["block_out_channels"][0] // 2), cond_out_act=p["cond_out_act"])


def peak_memory_mb(dev) -> float:
    if dev.type == "cuda": return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def bench_train(p, dev, perceptual_weight, steps) -> float:
    torch.manual_seed(0)
    S, B = p["image_size"], p["batch_size"]
    imgs = torch.randint(0, 256, (4 * B, S, S), dtype=torch.uint8).numpy()
    cond = torch.randn(len(imgs), 6)
    cfg = TrainConfig(train_steps=steps + 2, batch_size=B, lr=p["lr"], perceptual_weight=perceptual_weight, progress=False,
                      mixed_precision=p["mixed_precision"], channels_last=p["channels_last"] and dev.type == "cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        perc = PerceptualLoss(vgg16_relu3_3()[0]) if perceptual_weight > 0 else None
    tr = DDPMTrainer(make_model(p), imgs, cond, cfg=cfg, perceptual=perc, device=dev.type)
    tr.fit(until=2)  # warm-up steps, not timed
    if dev.type == "cuda": torch.cuda.synchronize()
    t0 = time.time(); tr.fit(until=steps + 2)
    if dev.type == "cuda": torch.cuda.synchronize()
    return steps * B / (time.time() - t0)


def bench_sampling(p, dev, n, measure_steps) -> float:
    "Seconds per denoising step for a batch of n images."
    m = make_model(p).to(dev).eval()
    if p["channels_last"] and dev.type == "cpu": m = m.to(memory_format=torch.channels_last)
    cond = torch.randn(n, 6)
    sample_ddim(m, cond, steps=2, progress=False)  # warm-up
    if dev.type == "cuda": torch.cuda.synchronize()
    t0 = time.time(); sample_ddim(m, cond, steps=measure_steps, generator=torch.Generator().manual_seed(0), progress=False, batch_size=n)
    if dev.type == "cuda": torch.cuda.synchronize()
    return (time.time() - t0) / measure_steps


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="demo", choices=["smoke", "demo", "paper"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--train-steps", type=int, default=5, help="timed training steps (after 2 warm-up steps)")
    ap.add_argument("--sample-batch", type=int, default=8, help="images per sampling batch")
    ap.add_argument("--measure-steps", type=int, default=20, help="DDIM steps timed to get the per-step cost")
    a = ap.parse_args()
    p, dev = settings(a.config), get_device(a.device)
    torch.manual_seed(0)
    n_par = sum(q.numel() for q in make_model(p).parameters())
    print(f"# bench_ddpm: config={a.config} image_size={p['image_size']} U-Net {p['block_out_channels']} ({n_par/1e6:.2f}M parameters) "
          f"batch={p['batch_size']} device={dev} torch threads={torch.get_num_threads()}", flush=True)
    rows = []
    for pw in (0.0, 0.05):
        ips = bench_train(p, dev, pw, a.train_steps)
        rows.append((f"train, perceptual_weight={pw}", f"{ips:.2f}", f"{p['batch_size'] / ips:.2f} s/step", f"{peak_memory_mb(dev):.0f}"))
        print(*rows[-1], sep=" | ", flush=True)
    if dev.type == "cuda": torch.cuda.reset_peak_memory_stats()
    s = bench_sampling(p, dev, a.sample_batch, a.measure_steps)
    for name, steps in [("DDPM-1000", 1000), ("DDIM-50", 50), ("DDIM-100", 100), ("DDIM-250", 250)]:
        rows.append((f"sample {name}", f"{a.sample_batch / (s * steps):.3f}", f"{s * steps / a.sample_batch:.2f} s/image", f"{peak_memory_mb(dev):.0f}"))
    print("\n| what | images/s | time | peak memory (MiB) |\n|---|---|---|---|")
    for r in rows: print("| " + " | ".join(r) + " |")
    print(f"\nsampling: {s * 1000:.1f} ms per denoising step for a batch of {a.sample_batch} (measured over DDIM-{a.measure_steps}; "
          "other step counts extrapolated)")


if __name__ == "__main__":
    main()
