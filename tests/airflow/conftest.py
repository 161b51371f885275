"""The DAG tests run in Airflow's own environment (`.airflow/bin/python -m pytest tests/airflow`, as `make test`
does); in the main environment, which has no Airflow, they are not collected.

Airflow reads its configuration when first imported, so a temporary AIRFLOW_HOME with its own SQLite
database and this repository's dags folder is set here, before any test module imports it.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

if importlib.util.find_spec("airflow") is None:
    collect_ignore_glob = ["test_*.py"]
else:
    _home = Path(tempfile.mkdtemp(prefix="tickwatch-airflow-"))
    os.environ.update(
        {
            "AIRFLOW_HOME": str(_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_home}/airflow.db",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        }
    )


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """`airflow db migrate` once per session (dag.test() needs the metadata database)."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=600,
    )
    return Path(os.environ["AIRFLOW_HOME"])
