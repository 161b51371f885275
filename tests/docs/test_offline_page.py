"""docs/offline.md works as written: every line of its shell blocks runs, in order, against the real stack (in a
private slice of it: the page's commands read the same TICKWATCH_* variables a user's shell would have)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import Namespace
from tickwatch.fleet import free_port

PAGE = Path(__file__).resolve().parents[2] / "docs" / "offline.md"


def blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", PAGE.read_text(), flags=re.S)


def test_the_page_has_its_steps():
    assert len(blocks()) == 6


def test_every_line_of_the_offline_page_runs(namespace: Namespace, tmp_path: Path):
    script = "\n".join(blocks())
    # stops whatever is left should a line fail, which `set -e` ends the script at
    guarded = f"set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{script}"
    venv = Path(sys.executable).parent
    env = {
        **namespace.env,
        "PATH": f"{venv}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(PAGE.parents[1]),
        "SLACK_PORT": str(free_port()),
        "API_PORT": str(free_port()),
        "HOOK_PORT": str(free_port()),
    }
    done = subprocess.run(["bash", "-c", guarded], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    logs = {log.name: log.read_text(errors="replace")[-2000:] for log in tmp_path.glob("*.log")}
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{logs}"
    assert re.search(r"✔ msg_\S+ anomaly\.detected TSLA: signature verified", done.stdout), done.stdout
    assert int(re.search(r"^(\d+)$", done.stdout, flags=re.M).group(1)) >= 1  # Slack messages posted
    assert '"symbol":"TSLA"' in done.stdout and '"rule":"drop"' in done.stdout  # the anomaly from the API
