#!/usr/bin/env bash
# Install what the local stack needs from the OS (Java 17+, Maven, redis-server) and uv, if missing.
# Idempotent; only calls apt-get when something is absent (and only as root, otherwise it says what to run).
set -euo pipefail

missing=()
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)

if ((${#missing[@]})); then
  if [ "$(id -u)" -eq 0 ]; then
    echo "bootstrap: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The package may start a system Redis on 6379; `tickwatch stack up` runs its own there instead.
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then
      systemctl disable --now redis-server || true
    fi
  else
    echo "bootstrap: please install: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

# uv in a private venv: works where the system Python is "externally managed" (PEP 668) or has no pip.
if [ ! -x .tools/bin/uv ]; then
  python3 -m venv .tools
  .tools/bin/pip install --quiet --disable-pip-version-check uv
fi
