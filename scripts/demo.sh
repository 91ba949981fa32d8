#!/usr/bin/env bash
# The main job: the lab demo. Installs what the lab needs (nftables for the agents'
# masquerade, iproute2), builds weft and runs `weft lab demo`: for each mode, a cluster of
# network namespaces is built, checked and removed. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

if [ "$(id -u)" != 0 ]; then
  echo "scripts/demo.sh: run as root (the lab creates network namespaces)" >&2
  exit 1
fi

scripts/install-deps.sh
cargo build --release -p weft
target/x86_64-unknown-linux-gnu/release/weft lab demo
