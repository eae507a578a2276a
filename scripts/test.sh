#!/usr/bin/env bash
# Installs everything (same as setup, without serving), a headless Chromium for the browser
# tests, then runs the whole test suite including the real-model tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --no-serve
if [ ! -x /usr/bin/chromium ]; then
  echo "== installing Debian chromium for the browser test"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
