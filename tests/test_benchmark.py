"""bench/benchmark.py in quick mode: every section of its report is written (tiny sizes, no timings to trust)."""

import subprocess
import sys

import pytest

from nst.paths import PROJECT_DIR


@pytest.mark.slow
def test_benchmark_quick_mode_runs_end_to_end(tmp_path):
    out = tmp_path / "results.md"
    done = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "bench" / "benchmark.py"), "--quick", "--repeats", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    text = out.read_text()
    for words in (
        "ours ÷ reference",
        "GFLOP/s",
        "bf16",
        "CPU kind",
        "The picture judge",
        "style distance",
        "edge correlation",
        "Time to the recipe's picture",
        "L-BFGS",
        "coarse to fine",
        "the old default",
        "peak RSS",
        "from fp32",  # the default in the precision "auto" did not choose, judged in fp32
        "TensorFlow's own conv gradient",
        "frozen conv layers",
    ):
        assert words in text, f"{words!r} missing from the benchmark's report"
    assert "not measured" not in text, text
