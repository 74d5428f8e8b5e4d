#!/usr/bin/env bash
# Builds a PostgreSQL image from Debian's packages (debootstrap), following the official postgres
# image's contract (see postgres/docker-entrypoint.sh), with no registry access.
# Skips the build when the image already exists; an image whose entrypoint is older than
# postgres/docker-entrypoint.sh gets the new one in a layer of its own (seconds, no debootstrap).
# Usage: scripts/build-postgres-image.sh [TAG]; the tag is the major version: dockhand/postgres:15
# (Debian 12's PostgreSQL) or dockhand/postgres:17 (Debian 13's), for the upgrade tests.
set -euo pipefail
cd "$(dirname "$0")"

image="${1:-dockhand/postgres:15}"
major="${image##*:}"
case "$major" in
    15) release=bookworm ;;
    17) release=trixie ;;
    *) echo "no Debian release ships PostgreSQL $major here (15: bookworm, 17: trixie)" >&2; exit 2 ;;
esac
entrypoint_sum="$(sha256sum postgres/docker-entrypoint.sh | cut -c1-16)"
stamp="LABEL dockhand.entrypoint=$entrypoint_sum"
if docker image inspect "$image" >/dev/null 2>&1; then
    have="$(docker image inspect "$image" --format '{{index .Config.Labels "dockhand.entrypoint"}}' 2>/dev/null || true)"
    if [ "$have" = "$entrypoint_sum" ]; then
        echo "image $image already present"
        exit 0
    fi
    c="$(docker create "$image")"
    trap 'docker rm -f "$c" >/dev/null 2>&1 || true' EXIT
    docker cp postgres/docker-entrypoint.sh "$c:/usr/local/bin/docker-entrypoint.sh"
    docker commit --change "$stamp" \
        --change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' --change 'CMD []' \
        "$c" "$image" >/dev/null
    echo "image $image: entrypoint updated"
    exit 0
fi

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v debootstrap >/dev/null 2>&1; then
    echo "installing Debian's debootstrap"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq debootstrap >/dev/null
fi

rootfs="$(mktemp -d)"
trap 'as_root rm -rf "$rootfs"' EXIT
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
echo "bootstrapping a Debian $release rootfs with postgresql-$major (about a minute)"
as_root debootstrap --variant=minbase --include="postgresql-$major" "$release" "$rootfs" "$mirror" >/dev/null
# Nothing at run time needs documentation, caches or package lists.
as_root rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs/var/lib/postgresql/$major"
as_root install -m 0755 postgres/docker-entrypoint.sh "$rootfs/usr/local/bin/docker-entrypoint.sh"

as_root tar -C "$rootfs" -c . | docker import \
    --change "ENV PATH=/usr/lib/postgresql/$major/bin:/usr/local/bin:/usr/bin:/bin" \
    --change 'ENV PGDATA=/var/lib/postgresql/data' \
    --change 'EXPOSE 5432' \
    --change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' \
    --change "$stamp" \
    - "$image" >/dev/null
echo "built image $image"
