#!/usr/bin/env bash
# The README's main job: a busybox container run by the embedded runtime (no containerd, no daemon).
set -euo pipefail
cd "$(dirname "$0")/.."
rootfs=${BUNKER_DEMO_ROOTFS:-/var/lib/bunker/demo-rootfs}
bash scripts/busybox-rootfs.sh "$rootfs"
if [ $# -eq 0 ]; then set -- /bin/echo "hello from a bunker container"; fi
exec dist/bunker run --rm --rootfs "$rootfs" "demo-$$" "$@"
