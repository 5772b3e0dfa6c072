#!/usr/bin/env bash
# Installs Debian's chromium for the ignored HTML-report rendering test
# (`cargo test --workspace -- --ignored`). Idempotent: does nothing when it is already there.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    chromium --version 2>/dev/null || true
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
$sudo apt-get update
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends chromium
chromium --version
