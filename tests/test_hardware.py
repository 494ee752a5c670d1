"""What tunesmith reads about the machine it runs on."""

import subprocess
import sys

from tunesmith.hardware import peak_rss_mb


def test_peak_rss_is_this_process_s_own_not_its_parent_s():
    """summary.json's peak RSS: a run started by a big process (a notebook, a test session) reports its own peak,
    not the parent's (ru_maxrss survives exec on Linux: a small child of a 1 GB parent said 1 GB)."""
    code = "from tunesmith.hardware import peak_rss_mb; print(peak_rss_mb())"
    big = bytearray(1024**3)
    big[::4096] = b"\x01" * len(big[::4096])  # every page touched: resident
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    del big
    assert 10 < child < 700  # python with torch imported, far from the parent's 1 GB
    assert peak_rss_mb() >= 1024
