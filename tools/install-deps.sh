#!/usr/bin/env bash
# Installs the Debian packages kiln needs, only those missing.
# Usage: tools/install-deps.sh [extra packages...]
set -euo pipefail
pkgs=(cmake make gcc pkg-config llvm-19-dev libyaml-dev libxgboost-dev libsqlite3-dev
      clang-19 libclang-rt-19-dev "$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "kiln: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
