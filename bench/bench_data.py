"""Throughput of the phantom renderer (01) and of the preprocessing cache build (02), the cost of the external
validation cohort and of test-only patients, and the speed of 02's row checks at CheXchoNet's size.

Usage: .venv/bin/python bench/bench_data.py [n_patients] [n_workers] [sections]
  sections: any of render,external,test,rows (comma-separated; default all)
"""
import sys, tempfile, time, warnings
from pathlib import Path
import numpy as np, pandas as pd
from cxr_nbdev.phantom import make_cohort, make_external_cohort, ct_projections, sample_patients, image_table
from cxr_nbdev.preprocessing import build_cache, check_rows, derive_labels

n_patients = int(sys.argv[1]) if len(sys.argv) > 1 else 300
n_workers = int(sys.argv[2]) if len(sys.argv) > 2 else 0
sections = (sys.argv[3] if len(sys.argv) > 3 else "render,external,test,rows").split(",")
ct_projections()  # fetch / project the CT once, outside the timings


def timed(f):
    t0 = time.time()
    out = f()
    return out, time.time() - t0


with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    if "render" in sections:
        for size in (64, 224):
            folder = tmp / f"phantom{size}"
            meta, t = timed(lambda: make_cohort(folder, n_patients, 1.0, size, seed=0, n_workers=n_workers))
            print(f"phantom  render {size:3d} px: {len(meta)} images in {t:5.1f} s = {len(meta) / t:6.1f} images/s (n_workers={n_workers})")
            for out in (64, 224) if size == 224 else (64,):
                (im, _), t = timed(lambda: build_cache(meta, folder, tmp / f"cache{size}_{out}", out, n_workers=n_workers, split="train"))
                print(f"preprocess {size:3d} px DICOM -> {out:3d} px cache: {len(im)} images in {t:5.1f} s = {len(im) / t:6.1f} images/s")
    if "external" in sections:  # the UPHS design at demo scale (64 px)
        meta, t = timed(lambda: make_external_cohort(tmp / "ext", 265, 315, 0.6, 64, seed=0, n_workers=n_workers))
        (im, _), t2 = timed(lambda: build_cache(meta, tmp / "ext", tmp / "ext_cache", 64, n_workers=n_workers, split="external"))
        pos = meta.drop_duplicates("patient_id").composite_slvh_dlv.mean()
        print(f"external cohort 265 patients / {len(meta)} images at 64 px: render {t:5.1f} s + cache {t2:5.1f} s "
              f"({pos:.0%} of patients composite-positive, {(meta.sex == 'F').mean():.0%} women)")
    if "test" in sections:  # what test-only patients add to 01 + 02 at demo scale, per 500 patients (2 images each)
        base, t0 = timed(lambda: make_cohort(tmp / "t0", 200, 2.0, 64, seed=0, n_workers=n_workers))
        more, t1 = timed(lambda: make_cohort(tmp / "t1", 200, 2.0, 64, seed=0, n_workers=n_workers, test_patients=500))
        (im, _), t2 = timed(lambda: build_cache(more, tmp / "t1", tmp / "t1_cache", 64, n_workers=n_workers, split="test"))
        n = (more.assigned_split == "test").sum()
        print(f"test_patients=500 at 64 px: +{n} test images; 01 render {t1 - t0:5.1f} s more; 02 cache {t2 * n / len(more):5.1f} s more")
    if "rows" in sections:  # 02's row checks on a CheXchoNet-sized table (71,589 rows) with a few faults
        rows = image_table(sample_patients(24689, 0), 2.9, 0, 64, 0.2)
        meta = derive_labels(rows)[["patient_id", "cxr_filename", "cxr_path", "age", "sex", "ivsd", "lvpwd", "lvidd",
                                    "slvh", "dlv", "composite_slvh_dlv"]]
        meta.loc[::1000, "lvidd"] = 50.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (ok, rej), t = timed(lambda: check_rows(meta))
        print(f"check_rows on {len(meta)} rows: {t:5.2f} s, {len(rej)} rejected")
