#!/usr/bin/env bash
# Installs the Debian packages iclock needs, only when some are missing.
# Idempotent: runs `apt-get update` once, and only if something must be installed.
# Usage: scripts/deps.sh [--with-python]   (python3-torch/sklearn are needed
# only to regenerate fixtures and for the PyTorch benchmark; tests use the
# committed fixtures.)
set -euo pipefail

pkgs=(build-essential pkg-config libcmocka-dev libopenblas-dev libinih-dev
      libxxhash-dev zlib1g-dev libcjson-dev libmicrohttpd-dev liblmdb-dev
      curl wrk locales)
if [ "${1:-}" = "--with-python" ]; then
  pkgs+=(python3-torch python3-sklearn python3-numpy python3-pandas)
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#pkgs[@]} packages present"
  exit 0
fi

echo "deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
