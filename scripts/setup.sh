#!/usr/bin/env bash
# One-step set-up on a fresh Debian machine, as root; idempotent and quick when all is there.
#   scripts/setup.sh          install + build
#   scripts/setup.sh run      ... then run a busybox container with the embedded runtime
#   scripts/setup.sh test     ... then run the whole test suite
set -euo pipefail
cd "$(dirname "$0")/.."

# Every package the tests use, named even where Debian installs it anyway: containerd brings ctr and
# containerd-shim-runc-v2, util-linux setpriv, bsdutils script(1); python3 binds a stale unix socket.
# The well-known .proto files are vendored under proto/wkt (no libprotobuf-dev). The image tests run
# their own docker-registry and build their images with umoci and skopeo (tar and zstd make layers,
# openssl the token server's certificate). Networks use the standard CNI plugins, iptables and ip.
debs=(runc containerd busybox-static criu gcc make libc6-dev protobuf-compiler python3 util-linux bsdutils
  docker-registry skopeo umoci tar zstd openssl containernetworking-plugins iptables iproute2)
# The other architecture's cross compiler and libc build native/prebuilt/ (native/Makefile `prebuilt`,
# run by scripts/build.sh), which the npm package ships for linux-x64 and linux-arm64.
case "$(uname -m)" in
  aarch64) debs+=(gcc-x86-64-linux-gnu libc6-dev-amd64-cross) ;;
  *) debs+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross) ;;
esac
# npm may come from a nodejs package that bundles it; Debian's own npm only when there is none.
command -v npm >/dev/null || debs+=(npm)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Bun itself is pinned in package.json and comes from npm, like every other dependency.
if [ ! -x node_modules/.bin/bun ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
export PATH="$PWD/node_modules/.bin:$PATH"

bash scripts/build.sh

case "${1:-}" in
  "") ;;
  run) shift; exec bash scripts/demo.sh "$@" ;;
  # The shim suites also run under containerd 1.7 and 2.x, unpacked from Debian trixie and sid.
  test) shift; bash scripts/containerd-versions.sh; exec bun test --timeout 120000 "$@" ;;
  *) echo "usage: scripts/setup.sh [run|test]" >&2; exit 2 ;;
esac
