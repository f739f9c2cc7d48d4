#!/bin/sh
# Builds the base image deploy/Dockerfile can start FROM when no registry is reachable (the
# Docker test's machine reaches Debian's archive only): a minimal Debian bookworm rootfs by
# debootstrap with Python 3.11 in a venv at /opt/venv, imported as an image. Then:
#   docker build --network host --build-arg BASE_IMAGE=shopify-sync-base:bookworm \
#       -f deploy/Dockerfile -t shopify-sync:0.1.0 .
# Needs root, debootstrap and a running Docker daemon. Usage: build-base-image.sh [TAG]
set -eu
tag=${1:-shopify-sync-base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$work/rootfs" "$mirror"
# The CAs this host trusts on top of Debian's (a TLS-inspecting egress proxy's, say), so
# pip inside `docker build` reaches the package index the host reaches.
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
    cp /usr/local/share/ca-certificates/*.crt "$work/rootfs/usr/local/share/ca-certificates/"
fi
chroot "$work/rootfs" update-ca-certificates >/dev/null
# Debian marks its Python externally managed (PEP 668): the image's pip is a venv's, first
# on PATH, like python:3.11-slim's /usr/local/bin/pip.
chroot "$work/rootfs" python3 -m venv /opt/venv
rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*

# pip 23 (bookworm's) trusts certifi, not the system store, unless PIP_CERT says otherwise.
tar -C "$work/rootfs" -c . | docker import \
    --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["python3"]' \
    - "$tag"
echo "built $tag"
