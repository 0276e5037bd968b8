#!/usr/bin/env bash
# Build (once) the stand-in Python base image for machines that reach no container registry:
#   ops/containers/build-base.sh [TAG]        default TAG: localhost/starcite-base:bookworm-python3
# Debian bookworm (debootstrap --variant=minbase) with Debian's python3 (3.11), python3-pip and
# python3-venv, trusting the host's CA bundle (/etc/ssl/certs/ca-certificates.crt is copied in, so pip
# in a build reaches PyPI as the host's pip does), imported with `podman import`. Use it as
#   podman build --format docker --build-arg PYTHON_IMAGE=localhost/starcite-base:bookworm-python3 .
# Debian's pip refuses system installs (PEP 668); the stand-in alone sets PIP_BREAK_SYSTEM_PACKAGES=1
# so the Dockerfile runs unchanged on it and on the official python image.
# Cached: the image when podman already has TAG; else the root filesystem tarball in
# $STARCITE_CONTAINER_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/starcite/containers), which a
# later run imports without debootstrap. Needs root, debootstrap and podman; DEBIAN_MIRROR overrides
# debootstrap's default mirror. Prints the tag.
set -euo pipefail
tag=${1:-localhost/starcite-base:bookworm-python3}
cache=${STARCITE_CONTAINER_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/starcite/containers}
PATH=$PATH:/usr/sbin:/sbin
tarball=$cache/bookworm-python3-v1.tar
mkdir -p "$cache"
exec 9>"$cache/.build-base.lock"
flock -w 900 9 || { echo "timed out waiting for $cache/.build-base.lock" >&2; exit 1; }
if podman image exists "$tag"; then echo "$tag"; exit 0; fi
if [ ! -s "$tarball" ]; then
  root=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$root" "$tarball.part"' EXIT
  echo "debootstrap bookworm into $root (a minute or two)" >&2
  timeout 900 debootstrap --variant=minbase --include=python3,python3-pip,python3-venv \
    bookworm "$root" ${DEBIAN_MIRROR:-} >"$cache/debootstrap.log" 2>&1 \
    || { tail -n 20 "$cache/debootstrap.log" >&2; exit 1; }
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" --numeric-owner -cf "$tarball.part" .
  mv "$tarball.part" "$tarball"
fi
podman import \
  --change 'ENV PIP_BREAK_SYSTEM_PACKAGES=1' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' \
  "$tarball" "$tag" >/dev/null
echo "$tag"
