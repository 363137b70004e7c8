#!/usr/bin/env bash
# Make sure `python3 -m venv` works (Debian ships venv in a separate package).
set -euo pipefail
py=${1:-python3}
if ! command -v "$py" >/dev/null; then
  echo "Taiqu needs Python >= 3.11 ($py not found). On Debian: sudo apt-get install python3 python3-venv" >&2
  exit 1
fi
"$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
  echo "Taiqu needs Python >= 3.11; $py is $("$py" --version)" >&2; exit 1; }
if ! "$py" -c 'import venv, ensurepip' 2>/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
  else
    echo "python3-venv is missing: sudo apt-get install python3-venv" >&2; exit 1
  fi
fi
