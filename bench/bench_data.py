"""Throughput of the phantom renderer (01) and of the preprocessing cache build (02): images per second.

Usage: .venv/bin/python bench/bench_data.py [n_patients] [n_workers]
"""
import sys, tempfile, time
from pathlib import Path
from cxr_nbdev.phantom import make_cohort, ct_projections
from cxr_nbdev.preprocessing import build_cache, derive_labels

n_patients = int(sys.argv[1]) if len(sys.argv) > 1 else 300
n_workers = int(sys.argv[2]) if len(sys.argv) > 2 else 0
ct_projections()  # fetch / project the CT once, outside the timings
with tempfile.TemporaryDirectory() as tmp:
    for size in (64, 224):
        folder = Path(tmp) / f"phantom{size}"
        t0 = time.time(); meta = make_cohort(folder, n_patients, 1.0, size, seed=0, n_workers=n_workers); t = time.time() - t0
        print(f"phantom  render {size:3d} px: {len(meta)} images in {t:5.1f} s = {len(meta) / t:6.1f} images/s (n_workers={n_workers})")
        for out in (64, 224) if size == 224 else (64,):
            t0 = time.time(); im, _ = build_cache(meta, folder, Path(tmp) / f"cache{size}_{out}", out, n_workers=n_workers, split="train"); t = time.time() - t0
            print(f"preprocess {size:3d} px DICOM -> {out:3d} px cache: {len(im)} images in {t:5.1f} s = {len(im) / t:6.1f} images/s")
