#!/usr/bin/env bash
# Makes a Rust builder image for the multi-stage Dockerfile without pulling anything: CI machines
# reach no container registry, so `rust:1-bookworm` (the Dockerfile's default BUILDER_IMAGE) is out
# of reach. Prints the image's name on its last line of stdout; everything else goes to stderr:
#
#     FLASHSALE_BUILDER_IMAGE=$(bash .ci/builder-image.sh) bash tests/compose.sh
#
# The image: a minimal Debian bookworm root from debootstrap (with gcc and libc6-dev: the linker
# driver and static glibc), this machine's active Rust toolchain copied in (its sysroot without
# the docs), and this machine's CA bundle, so cargo inside reaches crates.io over HTTPS the way
# the host does. Laid out like the official image: cargo and rustc on PATH, CARGO_HOME
# /usr/local/cargo. An image of that name already present is reused (the name carries the rustc
# version); FLASHSALE_BUILDER_REBUILD=1 makes it again.
#
# Needs root (debootstrap), Docker, and Debian's archive over HTTP; installs debootstrap with
# apt-get when it is missing.
set -euo pipefail

log() { printf 'builder-image.sh: %s\n' "$*" >&2; }

sysroot=$(rustc --print sysroot)
version=$(rustc --version | awk '{print $2}')
host=$(rustc -vV | sed -n 's/^host: //p')
name="flashsale-builder:rust-$version"
suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ca_bundle=/etc/ssl/certs/ca-certificates.crt

if [ "${FLASHSALE_BUILDER_REBUILD:-0}" != 1 ] && docker image inspect "$name" >/dev/null 2>&1; then
    log "reusing $name (FLASHSALE_BUILDER_REBUILD=1 makes it again)"
    echo "$name"
    exit 0
fi

[ -f "$ca_bundle" ] || { log "no CA bundle at $ca_bundle: cargo in the image could not reach crates.io"; exit 2; }
[ -x "$sysroot/bin/cargo" ] || { log "no cargo in the active toolchain $sysroot"; exit 2; }

if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2 ||
        { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2; }
fi

root=$(mktemp -d "${TMPDIR:-/var/tmp}/flashsale-builder.XXXXXX")
trap 'rm -rf "$root"' EXIT

start=$SECONDS
log "debootstrap --variant=minbase $suite (+ gcc, libc6-dev) into $root"
debootstrap --variant=minbase --include=gcc,libc6-dev "$suite" "$root" "$mirror" >"$root.log" 2>&1 ||
    { tail -n 30 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
# No package lists or downloaded .debs in the image.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
log "  debootstrap took $((SECONDS - start))s"

step=$SECONDS
log "Rust $version ($host) from $sysroot into /usr/local/rust"
mkdir -p "$root/usr/local/rust" "$root/usr/local/cargo"
# bin (cargo, rustc, ...), lib (the compiler and the target's std), libexec; share is docs only.
tar -C "$sysroot" -c bin lib libexec | tar -C "$root/usr/local/rust" -x
install -D -m 0644 "$ca_bundle" "$root/etc/ssl/certs/ca-certificates.crt"
log "  toolchain copied in $((SECONDS - step))s"

step=$SECONDS
log "docker import $name"
tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV CARGO_HOME=/usr/local/cargo' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'WORKDIR /' \
    --change 'CMD ["bash"]' \
    --message "flashsale builder: Debian $suite minbase + gcc, libc6-dev + Rust $version" \
    - "$name" >/dev/null
log "  imported in $((SECONDS - step))s; $(docker image inspect -f '{{.Size}}' "$name") bytes; $((SECONDS - start))s in all"
echo "$name"
