#!/usr/bin/env bash
# Builds the native core and dist/; make and bun skip what is already up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
make -s -C native
