"""`make bench` (bench/bench.py, a README command) runs: its quick mode prints a row per stage. Its figures are
the benchmark's business, not the test's; the test only keeps the script working as the package changes."""
import subprocess, sys
from conftest import ROOT


def test_bench_quick_prints_every_row():
    r = subprocess.run([sys.executable, "bench/bench.py", "--quick"], cwd=ROOT, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    for row in ["phantom rendering", "preprocessing DICOM", "DDPM training step, ours", "sampling DDIM-50",
                "sampling DDPM-1000", "DDIM inversion, 50 steps (plain)", "diagnostic DenseNet-121 training"]:
        assert f"| {row}" in r.stdout, (row, r.stdout)
