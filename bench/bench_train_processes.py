"""DDPM training on N processes (03's `train_processes`, `accelerate launch`) against one, at the demo scale.

    .venv/bin/python bench/bench_train_processes.py                 # 1 and 2 processes, 60 steps each (~2 min)
    .venv/bin/python bench/bench_train_processes.py --processes 1 2 4 --steps 100

Each run is a real launch (`cxr_nbdev.launch`): the demo's U-Net (configs/demo.yaml: widths, attention,
FiLM, v-prediction, min-SNR) trained on random 64-px images with the demo's global batch, split over the
processes. On a CPU each process gets cores / N threads (what the stage does), so the question is
whether N single-threaded processes (gloo all-reduce of the gradients) beat one process on all cores.
Images/s counts the timed steps only: the launch's first `--warmup` steps and the process start-up are
left out (they are measured from the training log's per-row throughput, not from the wall clock).
"""
import argparse, sys, tempfile, time, warnings
from pathlib import Path
import numpy as np, pandas as pd, torch, yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from cxr_nbdev.core import notebook_parameters
from cxr_nbdev.ddpm import CondDDPM, TrainConfig, ConditionSchema, PAPER_TRAIN_STATS
from cxr_nbdev.launch import launch_training, per_process_config, write_launch


def demo_03() -> dict:
    p = notebook_parameters(ROOT / "nbs" / "03_ddpm.ipynb")
    p.update({k: v for k, v in yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text()).items() if k in p})
    return p


def model(p, size) -> CondDDPM:
    torch.manual_seed(0)
    schema = ConditionSchema(mean=PAPER_TRAIN_STATS["mean"], std=PAPER_TRAIN_STATS["std"])
    return CondDDPM(image_size=size, block_out_channels=p["block_out_channels"],
                    layers_per_block=p["layers_per_block"], attention_levels=p["attention_levels"],
                    cond_schema=schema.to_dict(), cond_hidden=p["cond_hidden"],
                    prediction_type=p["prediction_type"], norm_num_groups=min(32, p["block_out_channels"][0] // 2),
                    time_scale_shift=p["time_scale_shift"], cond_out_act=p["cond_out_act"])


def run(n, p, steps, warmup, size, tmp: Path) -> dict:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (512, size, size), dtype=np.uint8)
    np.save(tmp / "images.npy", images)
    cfg = TrainConfig.from_params({**p, "train_steps": warmup + steps, "eval_every": warmup,
                                   "checkpoint_every": 0, "n_gen_val": 1, "gen_val_steps": 1,
                                   "val_batches": 1, "progress": False, "channels_last": True})
    m = model(p, size)
    cond = torch.randn(len(images), len(m.schema.names))
    folder = tmp / f"launch{n}"
    write_launch(folder, m, tmp / "images.npy", range(496), range(496, 512), cond[:496], cond[496:],
                 per_process_config(cfg, n), tmp / f"out{n}", perceptual=False, device="cpu")
    t0 = time.time()
    with open(tmp / f"log{n}.txt", "w") as log, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stdout, sys.stdout = sys.stdout, log
        try: launch_training(folder, n)
        finally: sys.stdout = stdout
    wall = time.time() - t0
    rows = pd.read_csv(tmp / f"out{n}" / "training_log.csv")
    return dict(processes=n, images_per_s=round(float(rows.train_images_per_s.iloc[-1]), 1),
                wall_s=round(wall, 1), global_batch=cfg.batch_size, timed_steps=steps)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=60, help="timed steps")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    ap.add_argument("--size", type=int, default=64)
    a = ap.parse_args()
    p = demo_03()
    rows = []
    for n in a.processes:
        with tempfile.TemporaryDirectory() as tmp: rows.append(run(n, p, a.steps, a.warmup, a.size, Path(tmp)))
        print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    df["speed_vs_1"] = (df.images_per_s / df.images_per_s.iloc[0]).round(2)
    print(df.to_string(index=False))


if __name__ == "__main__":
    main()
