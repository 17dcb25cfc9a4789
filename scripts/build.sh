#!/usr/bin/env bash
# Builds the native core and dist/: one compiled binary (the .so and the static bunker-init embedded) and the shim's name as a link to it.
# `prebuilt` also cross-compiles native/prebuilt/linux-{x64,arm64}/, what the npm package ships (src/native.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
make -s -C native prebuilt
mkdir -p dist
# Rebuild the binary only when a source it embeds is newer than it.
if [ ! -x dist/bunker ] || [ -n "$(find src native/libbunker.so native/bunker-init package.json scripts/build.sh -newer dist/bunker -print -quit)" ]; then
  commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  # No .env/bunfig.toml autoload: a system binary must not read them from its cwd (tests/support/compile.ts has the same flags).
  # ESM with code splitting: every `await import()` becomes its own chunk in the binary, loaded when
  # first imported, so a shim action or a CLI command no longer deserializes the whole program before
  # main (a shim `start` reached main 8-10 ms sooner, its serve process holds ~0.8 MiB less).
  bun build --compile --bytecode --format=esm --splitting --no-compile-autoload-dotenv --no-compile-autoload-bunfig --define "BUNKER_COMMIT=\"$commit\"" src/cli/main.ts --outfile dist/bunker.tmp >/dev/null
  mv -f dist/bunker.tmp dist/bunker
fi
ln -sfn bunker dist/containerd-shim-bunker-v1
