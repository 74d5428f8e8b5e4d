#!/usr/bin/env bash
# Builds the local images dockhand's examples and tests run, with no registry access:
# a busybox image imported from a rootfs made of Debian's busybox-static.
# Skips any image that already exists. Usage: scripts/build-images.sh [IMAGE_TAG]
set -euo pipefail

image="${1:-dockhand/busybox:local}"

if docker image inspect "$image" >/dev/null 2>&1; then
    echo "image $image already present"
    exit 0
fi

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

busybox=""
for candidate in /bin/busybox /usr/bin/busybox; do
    if [ -x "$candidate" ] && ! ldd "$candidate" >/dev/null 2>&1; then busybox="$candidate"; break; fi
done
if [ -z "$busybox" ]; then
    echo "installing Debian's busybox-static"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq busybox-static >/dev/null
    busybox=/bin/busybox
fi

rootfs="$(mktemp -d)"
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs"/{bin,etc,tmp,proc,sys,dev,root,srv,data,www}
chmod 1777 "$rootfs/tmp"
cp "$busybox" "$rootfs/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"

tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/bin' \
    --change 'CMD ["sh"]' \
    - "$image" >/dev/null
echo "built image $image"
