#!/usr/bin/env bash
# Builds a minimal busybox rootfs in DIR from Debian's busybox-static (one link per applet).
set -euo pipefail
dir=${1:?usage: busybox-rootfs.sh DIR}
[ -x "$dir/bin/busybox" ] && exit 0
tmp="$dir.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"/{bin,proc,sys,dev,tmp,etc,root}
cp /bin/busybox "$tmp/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$tmp/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$tmp/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$tmp/etc/group"
chmod 1777 "$tmp/tmp"
mkdir -p "$(dirname "$dir")"
mv -T "$tmp" "$dir"
