#!/usr/bin/env bash
# The README's main job: a busybox container run from an image by the embedded runtime (no
# containerd, no daemon, no registry): the image archive is built offline from busybox-static,
# loaded into bunker's image store, then run.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
archive=${BUNKER_DEMO_ARCHIVE:-/var/lib/bunker/busybox-image.tar}
mkdir -p "$(dirname "$archive")"
[ -s "$archive" ] || bun scripts/busybox-image.ts "$archive" >/dev/null
dist/bunker load -q -i "$archive"
if [ $# -eq 0 ]; then set -- /bin/echo "hello from a bunker container"; fi
exec dist/bunker run --rm busybox "$@"
