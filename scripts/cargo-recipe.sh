#!/usr/bin/env bash
# cargo-recipe.sh DEST: writes into DEST what compiling the workspace's dependencies needs and
# nothing else: Cargo.lock, every Cargo.toml, scripts/build-static.sh, and a stub in place of
# each target's root file (src/lib.rs, src/main.rs, src/bin/*.rs, build.rs, and any `path =
# "....rs"` a manifest names). The Dockerfile builds this recipe in a layer of its own, so the
# dependencies are compiled again only when a manifest or Cargo.lock changes, not on every
# source edit (the idea of cargo-chef, with nothing to install, and without BuildKit cache
# mounts, which docker-compose v1's builder lacks). Stubs have fixed content, so the same
# manifests give the same recipe, byte for byte, and Docker's layer cache hits.
set -euo pipefail
dest=${1:?usage: cargo-recipe.sh DEST}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
cd "$(dirname "$0")/.."

stub=$'#![allow(dead_code)]\nfn main() {}\n'
put() { # put FILE [CONTENT]: FILE into DEST, as CONTENT if given
    mkdir -p "$dest/$(dirname "$1")"
    if [ $# -gt 1 ]; then printf '%s' "$2" >"$dest/$1"; else cp "$1" "$dest/$1"; fi
}

put Cargo.lock
put scripts/build-static.sh
chmod +x "$dest/scripts/build-static.sh"
while IFS= read -r manifest; do
    dir=$(dirname "$manifest")
    put "$manifest"
    {
        for f in src/lib.rs src/main.rs build.rs src/bin/*.rs src/bin/*/main.rs; do echo "$f"; done
        sed -n 's/^[[:space:]]*path[[:space:]]*=[[:space:]]*"\([^"]*\.rs\)".*/\1/p' "$manifest"
    } | sort -u | while IFS= read -r target; do
        if [ -f "$dir/$target" ]; then put "$dir/$target" "$stub"; fi
    done
done < <(find . -name Cargo.toml -not -path '*/target/*' -not -path './dist/*' | sed 's|^\./||' | sort)
