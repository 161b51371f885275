"""The bench's own measuring tools (the figures themselves are printed by `tickwatch bench`, never asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from tickwatch.bench.common import cpu_seconds


def test_bench_counts_the_cpu_of_a_process_and_its_descendants():
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass\ntime.sleep(30)",
        ]
    )
    try:
        time.sleep(1.5)  # the child has burnt its 0.5 s and sleeps
        used = cpu_seconds({"child": [child.pid], "tree": [os.getpid()], "gone": [2**22 + 7]})
        assert 0.45 <= used["child"] < 1.5
        assert used["tree"] >= used["child"] + 0.1  # this test process's own CPU, plus the child's
        assert "gone" not in used
    finally:
        child.kill()
        child.wait()
