#!/usr/bin/env bash
# The dashboard in a real browser: builds the driver, serves `driver web` on a free loopback
# port, runs tests/browser/dashboard.py (Playwright driving the system Chromium, never a
# downloaded one), then stops the driver. Screenshots land in target/browser/.
#
# Needs: python3 (Playwright comes pinned into CI's virtual environment, .ci/venv.sh; never
# `playwright install`) and Debian's chromium (.ci/chromium.sh). CHROMIUM=/path overrides the
# browser.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
chromium=${CHROMIUM:-/usr/bin/chromium}
out="$root/target/browser"
mkdir -p "$out"

if [ ! -x "$chromium" ]; then
    bash .ci/chromium.sh
fi
# Playwright, pinned in .ci/requirements.txt, from CI's virtual environment (its python3 first
# on PATH from here on).
# shellcheck source=../../.ci/venv.sh
source .ci/venv.sh

cargo build --quiet -p flashsale-driver --bin driver
driver="$root/target/debug/driver"

log="$out/driver-web.log"
"$driver" web --listen 127.0.0.1:0 2>"$log" &
pid=$!
cleanup() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
trap cleanup EXIT

# The driver prints where it listens (port 0: the OS picked a free one).
url=""
for _ in $(seq 1 300); do
    url=$(sed -n 's/^driver: dashboard on \(http:[^ ]*\)$/\1/p' "$log" | head -1)
    [ -n "$url" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; echo "driver web exited" >&2; exit 1; }
    sleep 0.1
done
if [ -z "$url" ]; then
    cat "$log" >&2
    echo "driver web did not say where it listens within 30 s" >&2
    exit 1
fi

python3 tests/browser/dashboard.py "$url" --chromium "$chromium" --out "$out"
