#!/usr/bin/env bash
# Every benchmark, side by side against its reference (as root): bunker run vs runc, the shim vs
# containerd-shim-runc-v2, ttrpc vs Go ttrpc, bridge networking vs nerdctl's chain and podman (podman and wrk
# only if installed: apt-get install -y podman wrk). Each prints a table and one JSON line.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
for b in bench/run.ts bench/shim.ts bench/ttrpc.ts bench/network.ts; do
  [ -f "$b" ] || continue
  echo "== $b"
  bun "$b"
done
