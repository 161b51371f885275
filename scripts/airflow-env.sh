#!/usr/bin/env bash
# Airflow's own virtual environment in .airflow/, from the pinned scripts/airflow-requirements.txt.
#
# Why separate: Airflow 3.3 caps fastapi below 0.137 while the main environment (.venv, uv.lock) runs a current
# FastAPI for api/ and bot/; one resolver cannot satisfy both. The DAG only imports `pipeline`, which comes from
# the source tree (PYTHONPATH, set by the Makefile, docker-compose and the tests), so the core's own
# dependencies are listed in airflow-requirements.in next to Airflow.
#
# Idempotent: re-syncs only when the pins changed. Re-pin with
#   .tools/bin/uv pip compile scripts/airflow-requirements.in --python-version 3.11 -o scripts/airflow-requirements.txt
set -euo pipefail
cd "$(dirname "$0")/.."

UV=.tools/bin/uv
ENV_DIR=${AIRFLOW_VENV:-.airflow}
PINS=scripts/airflow-requirements.txt
export UV_PYTHON_DOWNLOADS=never  # the machine's python3 (>= 3.11), never a downloaded interpreter

[ -x "$UV" ] || scripts/bootstrap.sh
if [ -f "$ENV_DIR/.synced" ] && cmp -s "$PINS" "$ENV_DIR/.synced"; then
  exit 0
fi
[ -x "$ENV_DIR/bin/python" ] || "$UV" venv --quiet --python python3 "$ENV_DIR"
"$UV" pip sync --quiet --python "$ENV_DIR/bin/python" --compile-bytecode "$PINS"
cp "$PINS" "$ENV_DIR/.synced"
"$ENV_DIR/bin/airflow" version >/dev/null
echo "airflow-env: $("$ENV_DIR/bin/airflow" version) in $ENV_DIR"
