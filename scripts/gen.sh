#!/usr/bin/env bash
# Regenerates src/gen/ from every .proto under proto/ with protoc + protoc-gen-es.
# Usage: scripts/gen.sh [OUT_DIR]   (default src/gen; the freshness test passes a temp dir)
# Output is deterministic: sorted inputs, paths relative to proto/, no timestamps.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-src/gen}"
protoc_bin="${PROTOC:-/usr/bin/protoc}"
plugin="$PWD/node_modules/.bin/protoc-gen-es"
[ -x "$protoc_bin" ] || { echo "gen.sh: protoc not found at $protoc_bin (apt-get install protobuf-compiler)" >&2; exit 1; }
[ -x "$plugin" ] || { echo "gen.sh: $plugin missing (run npm ci)" >&2; exit 1; }
# The well-known types we import (google/protobuf/{any,empty,timestamp}.proto) are vendored under proto/wkt:
# Debian ships them in libprotobuf-dev, not with protoc, and a system include dir made generation differ by
# machine. They are an include path only; protoc-gen-es maps them to @bufbuild/protobuf/wkt.
wkt_include="proto/wkt"

mapfile -t files < <(cd proto && find . -path ./wkt -prune -o -name '*.proto' -printf '%P\n' | LC_ALL=C sort)
[ "${#files[@]}" -gt 0 ] || { echo "gen.sh: no .proto files under proto/" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$protoc_bin" -I proto -I "$wkt_include" \
  --plugin=protoc-gen-es="$plugin" \
  --es_out="$tmp" \
  --es_opt=target=ts,import_extension=ts \
  "${files[@]}"

# Replace the output as a whole so files of deleted .proto sources do not linger.
mkdir -p "$out"
find "$out" -name '*_pb.ts' -delete
cp -r "$tmp"/. "$out"/
find "$out" -type d -empty -delete 2>/dev/null || true
mkdir -p "$out"
