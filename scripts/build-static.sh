#!/usr/bin/env bash
# Builds `server` and `driver` as static binaries and copies them into dist/: what the FROM
# scratch image holds. The Dockerfile runs it in its builder stage; on a host with Rust it is the
# fast path, with Dockerfile.prebuilt packing dist/ into the image (docs/compose.md).
#
# Static glibc (+crt-static) on the host's own Linux GNU target: no extra rustup target, no
# musl toolchain. The explicit --target keeps RUSTFLAGS away from build scripts and proc macros,
# which cannot be static.
set -euo pipefail
cd "$(dirname "$0")/.."

target=$(rustc -vV | sed -n 's/^host: //p')
case "$target" in
    x86_64-unknown-linux-gnu | aarch64-unknown-linux-gnu) ;;
    *) echo "build-static.sh: host target $target is not supported (needs x86_64 or aarch64 Linux GNU)" >&2; exit 2 ;;
esac

# No stale binaries in dist/ if the build fails.
rm -f dist/server dist/driver dist/built-by-scripts-build-static.sh

# Images get no debug info (30+ MB per binary otherwise); symbols stay for readable backtraces.
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=debuginfo \
    cargo build --release --locked --target "$target" --bin server --bin driver

out="${CARGO_TARGET_DIR:-target}/$target/release"
mkdir -p dist
for bin in server driver; do
    # A dynamic binary would fail in a scratch image with a misleading "no such file or directory".
    if ! ldd "$out/$bin" 2>&1 | grep -q 'statically linked'; then
        echo "build-static.sh: $out/$bin is not statically linked:" >&2
        ldd "$out/$bin" >&2 || true
        exit 1
    fi
    cp "$out/$bin" "dist/$bin"
done

# The Dockerfile copies this marker first, so a build without dist/ fails naming this script.
{
    echo "target: $target"
    if commit=$(git rev-parse --short HEAD 2>/dev/null); then
        git diff --quiet HEAD 2>/dev/null || commit="$commit (with uncommitted changes)"
    else
        commit="unknown (built outside a git checkout, e.g. by the Dockerfile)"
    fi
    echo "commit: $commit"
    echo "rustc: $(rustc --version)"
} >dist/built-by-scripts-build-static.sh

ls -l dist/server dist/driver
if command -v file >/dev/null; then file dist/server dist/driver; fi
