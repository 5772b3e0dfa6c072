# shellcheck shell=bash
# Shell helpers shared by the end-to-end scripts (tests/compose.sh, tests/compose-postgres.sh).
# Source it after `set -euo pipefail`; `fail` names the script that sourced it.

# step TEXT...: a heading with the seconds since the script started.
step() { printf '\n=== %s (%ss)\n' "$*" "$SECONDS"; }

# fail TEXT...: says why on stderr and exits 1 (the script's EXIT trap cleans up).
fail() { echo "${0##*/}: FAIL: $*" >&2; exit 1; }

# wait_until LIMIT_S WHAT CMD...: polls CMD every 0.5 s until it succeeds or LIMIT_S pass.
wait_until() {
    local limit=$1 what=$2 start=$SECONDS
    shift 2
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS - start >= limit)); then
            fail "timed out after ${limit}s waiting for $what"
        fi
        sleep 0.5
    done
    echo "  $what: after $((SECONDS - start))s"
}
