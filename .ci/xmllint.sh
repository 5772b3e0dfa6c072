#!/usr/bin/env bash
# Installs Debian's libxml2-utils (xmllint) for the ignored JUnit schema tests
# (driver/tests/ci_reports.rs validates `--junit` output against tests/junit/junit-10.xsd).
# Idempotent: does nothing when xmllint is already there.
set -euo pipefail

if command -v xmllint >/dev/null 2>&1; then
    xmllint --version 2>&1 | head -1
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
$sudo apt-get update
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends libxml2-utils
xmllint --version 2>&1 | head -1
