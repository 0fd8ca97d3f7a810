"""Cohort sampling throughput: images per second of DDPM-1000 and DDIM-50 at a run's model size.

    .venv/bin/python bench/bench_cohort.py [--config configs/demo.yaml] [--model DIR] [--n-images 4]
                                           [--samplers ddim:50 ddpm:1000] [--device auto] [--threads 0]

Uses the trained model of the run (`<outputs>/<run_name>/03_ddpm/model`) when it exists, otherwise an
untrained CondDDPM with the config's architecture and image size: the cost of sampling does not depend
on the weights. Each sampler is timed on one batch of `--n-images` images (after a one-step warm-up);
sampling cost is linear in the number of steps, so a short DDIM run measures the same per-step cost.
Prints a table and a JSON line.
"""
import argparse, json, time
from pathlib import Path
import torch
from cxr_nbdev.core import get_device, load_params, outputs_root, stage_parameters
from cxr_nbdev.cohort import sampler_throughput
from cxr_nbdev.ddpm import PAPER_TRAIN_STATS, CondDDPM, ConditionSchema, load_ddpm


def demo_model(params: dict) -> CondDDPM:
    "An untrained CondDDPM with the architecture and image size that `params` (a run's config) would train."
    p = {**stage_parameters("02_preprocessing"), **stage_parameters("03_ddpm"), **params}
    return CondDDPM(image_size=p["image_size"], block_out_channels=tuple(p["block_out_channels"]),
                    layers_per_block=p["layers_per_block"], attention_levels=tuple(p["attention_levels"]),
                    cond_hidden=p["cond_hidden"], prediction_type=p["prediction_type"],
                    time_scale_shift=p["time_scale_shift"], cond_out_act=p["cond_out_act"],
                    cond_schema=ConditionSchema(mean=PAPER_TRAIN_STATS["mean"], std=PAPER_TRAIN_STATS["std"]).to_dict())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/demo.yaml")
    ap.add_argument("--model", default="", help="a saved CondDDPM folder (default: the config's run, else untrained)")
    ap.add_argument("--n-images", type=int, default=4)
    ap.add_argument("--samplers", nargs="+", default=["ddim:50", "ddpm:1000"], help="sampler:steps (ddpm always takes all T steps)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    a = ap.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    params = load_params(a.config)
    model_dir = Path(a.model) if a.model else outputs_root() / params.get("run_name", "demo") / "03_ddpm" / "model"
    if (model_dir / "config.json").exists(): model, source = load_ddpm(model_dir), str(model_dir)
    else:
        torch.manual_seed(0); model, source = demo_model(params).eval(), f"untrained, architecture of {a.config}"
    model = model.to(get_device(a.device))
    n_params = sum(p.numel() for p in model.parameters())
    sampler_throughput(model, "ddim", 1, n_images=a.n_images)  # warm-up
    rows = []
    for spec in a.samplers:
        name, steps = spec.split(":") if ":" in spec else (spec, "50")
        rows.append(sampler_throughput(model, name, int(steps), n_images=a.n_images))
    print(f"model: {source}; {model.image_size} px; {n_params / 1e6:.2f} M parameters; device {next(model.parameters()).device}; "
          f"torch threads {torch.get_num_threads()}")
    for r in rows: print(f"{r['sampler']:>10}: {r['images_per_s']:.4f} images/s ({r['seconds']:.1f} s for {r['n_images']} images)")
    print(json.dumps(dict(model=source, image_size=model.image_size, params_m=round(n_params / 1e6, 2), results=rows)))
    return rows


if __name__ == "__main__":
    main()
