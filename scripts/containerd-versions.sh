#!/usr/bin/env bash
# Fetches the containerd builds the shim is tested against besides the machine's own (Debian 12's
# 1.6): Debian trixie's 1.7 and sid's 2.x. Their .debs hold Go binaries that need only libc, so they
# are unpacked (dpkg-deb -x), never installed, into $BUNKER_CACHE/containerd/<suite>/ (default
# /var/cache/bunker), beside a VERSION file. apt runs with a private sources list, lists dir and
# cache dir, so the machine's own apt sources and state are left untouched.
#
# Idempotent: a suite already unpacked is kept (delete its folder to refetch). Prints one line per
# suite: "<suite> <version> <dir>". Exits non-zero if a suite cannot be fetched.
set -euo pipefail
cache="${BUNKER_CACHE:-/var/cache/bunker}/containerd"
suites=(trixie sid)
mkdir -p "$cache"

need=()
for s in "${suites[@]}"; do
  [ -x "$cache/$s/usr/bin/containerd" ] && [ -s "$cache/$s/VERSION" ] || need+=("$s")
done

if [ ${#need[@]} -gt 0 ]; then
  apt_dir="$cache/.apt"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
  : >"$apt_dir/sources.list"
  for s in "${need[@]}"; do
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $s main" >>"$apt_dir/sources.list"
  done
  apt_opts=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o Dir::Etc::sourceparts=-
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o APT::Sandbox::User=root)
  apt-get "${apt_opts[@]}" update -qq
  for s in "${need[@]}"; do
    work=$(mktemp -d "$cache/.fetch-$s.XXXXXX")
    (cd "$work" && apt-get "${apt_opts[@]}" download -qq "containerd/$s")
    deb=$(ls "$work"/containerd_*.deb)
    version=$(dpkg-deb -f "$deb" Version)
    mkdir -p "$work/root"
    dpkg-deb -x "$deb" "$work/root"
    echo "$version" >"$work/root/VERSION"
    # Replace the suite's folder whole, so a half-unpacked one never looks complete.
    rm -rf "$cache/$s"
    mv "$work/root" "$cache/$s"
    rm -rf "$work"
  done
fi

for s in "${suites[@]}"; do
  echo "$s $(cat "$cache/$s/VERSION") $cache/$s"
done
