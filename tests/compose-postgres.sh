#!/usr/bin/env bash
# End-to-end test of the PostgreSQL Compose variant (docker-compose.postgres.yml): a `postgres`
# service (health-checked with pg_isready, data in a volume) and the checkout server scaled to 3
# replicas on it. The `driver` service reaches all 3 through the service's DNS name
# (`server:50051` resolves to 3 addresses) and the test checks, from its JSON reports:
#   - safe/mutex FAILS the audit with oversold units, every replica having sold (each replica's
#     lock guards only itself): the lesson of the variant, and this test's positive control;
#   - safe/atomic (the conditional UPDATE) PASSES with exactly the stock sold, over the same
#     3 replicas.
# Bounded in time (every wait has a limit) and it removes everything it created, pass or fail.
#
# Images:
#   FLASHSALE_IMAGE           use this flashsale image as it is (not built, not removed).
#                             Unset: a throwaway tag built through compose from the Dockerfile,
#                             as tests/compose.sh does (FLASHSALE_BUILDER_IMAGE names its builder).
#   FLASHSALE_POSTGRES_IMAGE  use this database image as it is (e.g. postgres:16 where it can be
#                             pulled). Unset: a throwaway tag built from docker/postgres/Dockerfile
#                             on FLASHSALE_POSTGRES_BASE_IMAGE (default debian:bookworm-slim);
#                             CI, which can pull nothing, passes the image .ci/builder-image.sh
#                             makes:
#     base=$(bash .ci/builder-image.sh)
#     FLASHSALE_BUILDER_IMAGE=$base FLASHSALE_POSTGRES_BASE_IMAGE=$base bash tests/compose-postgres.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if docker compose version >/dev/null 2>&1; then
    dc=(docker compose -f docker-compose.postgres.yml)
elif command -v docker-compose >/dev/null 2>&1; then
    dc=(docker-compose -f docker-compose.postgres.yml)
else
    echo "compose-postgres.sh: needs the docker compose plugin or docker-compose" >&2
    exit 2
fi
command -v python3 >/dev/null || { echo "compose-postgres.sh: needs python3" >&2; exit 2; }

export COMPOSE_PROJECT_NAME="flashsale-pgtest-$$"
built=()
if [ -z "${FLASHSALE_IMAGE:-}" ]; then
    export FLASHSALE_IMAGE="flashsale:pgtest-$$"
    build_flashsale=1
else
    build_flashsale=0
fi
if [ -z "${FLASHSALE_POSTGRES_IMAGE:-}" ]; then
    export FLASHSALE_POSTGRES_IMAGE="flashsale-postgres:pgtest-$$"
    build_postgres=1
else
    build_postgres=0
fi
FLASHSALE_POSTGRES_PASSWORD="pgtest-$$-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
FLASHSALE_ADMIN_TOKEN="pgtest-admin-$$-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
export FLASHSALE_POSTGRES_PASSWORD FLASHSALE_ADMIN_TOKEN
# 20 ms of simulated work per purchase: the mutex's read-modify-write windows overlap across
# replicas on every purchase, not by luck.
export FLASHSALE_LATENCY=20ms FLASHSALE_STOCK=30
tmp=$(mktemp -d "${TMPDIR:-/tmp}/flashsale-compose-pg.XXXXXX")

# shellcheck source=tests/lib.sh
source tests/lib.sh

cleanup() {
    local rc=$?
    trap - EXIT
    if [ "$rc" -ne 0 ]; then
        echo "=== compose-postgres.sh failed (exit $rc); containers and their logs:" >&2
        "${dc[@]}" ps -a >&2 || true
        "${dc[@]}" logs --no-color --timestamps --tail 100 >&2 || true
    fi
    "${dc[@]}" --profile cli down -v --remove-orphans >/dev/null 2>&1 ||
        "${dc[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
    docker ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" |
        xargs -r docker rm -f >/dev/null 2>&1 || true
    docker volume ls -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" |
        xargs -r docker volume rm >/dev/null 2>&1 || true
    for image in "${built[@]}"; do docker image rm "$image" >/dev/null 2>&1 || true; done
    # Untagged layers of the images this run built (labelled with its build id).
    docker images -aq --filter "label=org.flashsale.build=$COMPOSE_PROJECT_NAME" |
        xargs -r docker image rm >/dev/null 2>&1 || true
    rm -rf "$tmp"
    echo "compose-postgres.sh: exit $rc after ${SECONDS}s"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

servers_healthy() {
    local ids n=0 id
    ids=$("${dc[@]}" ps -q server)
    for id in $ids; do
        [ "$(docker inspect -f '{{.State.Health.Status}}' "$id")" = healthy ] || return 1
        n=$((n + 1))
    done
    [ "$n" -eq 3 ]
}
# run_driver OUT ARGS...: the driver service against server:50051, JSON report into OUT;
# returns the driver's exit status.
run_driver() {
    local out=$1
    shift
    timeout 180 "${dc[@]}" run --rm -T driver --output json "$@" >"$out"
}
# check_json FILE PYTHON_EXPR...: each expression, with `r` the parsed report, must be true.
check_json() {
    local file=$1
    shift
    python3 - "$file" "$@" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
for expr in sys.argv[2:]:
    if not eval(expr, {"r": r}):
        print(f"check failed: {expr}", file=sys.stderr)
        print(json.dumps({k: r.get(k) for k in ("verdict", "audit", "replicas", "run")},
                         indent=1)[:3000], file=sys.stderr)
        sys.exit(1)
EOF
}
summary() {
    python3 - "$1" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
a = r["audit"]
per = " / ".join(str(x["purchased"]) for x in r["replicas"])
print(f"  verdict {r['verdict']}, sold {a['units_sold']}, oversold {a['oversold_units']}, "
      f"purchased per replica {per}")
EOF
}

if [ "$build_postgres" = 1 ]; then
    step "build the PostgreSQL image from docker/postgres (base ${FLASHSALE_POSTGRES_BASE_IMAGE:-debian:bookworm-slim})"
    built+=("$FLASHSALE_POSTGRES_IMAGE")
    docker build -q -t "$FLASHSALE_POSTGRES_IMAGE" \
        --build-arg "BASE_IMAGE=${FLASHSALE_POSTGRES_BASE_IMAGE:-debian:bookworm-slim}" \
        --build-arg "FLASHSALE_BUILD=$COMPOSE_PROJECT_NAME" docker/postgres >/dev/null
fi
if [ "$build_flashsale" = 1 ]; then
    step "build the flashsale image from source through compose (builder ${FLASHSALE_BUILDER_IMAGE:-rust:1-bookworm})"
    built+=("$FLASHSALE_IMAGE")
    "${dc[@]}" build --build-arg FLASHSALE_BUILD="$COMPOSE_PROJECT_NAME" server >"$tmp/build.log" 2>&1 ||
        { tail -n 60 "$tmp/build.log" >&2; fail "compose build failed"; }
fi

step "up: postgres + 3 server replicas"
"${dc[@]}" up -d postgres server
wait_until 120 "3 healthy server replicas (postgres healthy first)" servers_healthy
[ "$("${dc[@]}" ps -q postgres | xargs docker inspect -f '{{.State.Health.Status}}')" = healthy ] ||
    fail "postgres is not healthy"

step "safe/mutex over server:50051 (3 replicas): must FAIL with oversell"
status=0
run_driver "$tmp/mutex.json" --mode safe --strategy mutex --users 300 --connections 3 \
    --stock 30 --settle 2s || status=$?
[ "$status" -eq 1 ] || fail "mutex across 3 replicas exited $status, expected 1 (audit failed)"
summary "$tmp/mutex.json"
check_json "$tmp/mutex.json" \
    'r["verdict"] == "fail"' \
    'r["audit"]["oversold_units"] > 0' \
    'len(r["run"]["targets"]) == 3' \
    'len(r["replicas"]) == 3 and all(x["purchased"] > 0 for x in r["replicas"])'

step "safe/atomic over server:50051 (3 replicas): must PASS, exactly the stock sold"
status=0
run_driver "$tmp/atomic.json" --mode safe --strategy atomic --users 300 --connections 3 \
    --stock 30 --settle 2s || status=$?
[ "$status" -eq 0 ] || fail "atomic across 3 replicas exited $status, expected 0 (audit passed)"
summary "$tmp/atomic.json"
check_json "$tmp/atomic.json" \
    'r["verdict"] == "pass"' \
    'r["audit"]["oversold_units"] == 0' \
    'r["audit"]["units_sold"] == 30' \
    'len(r["replicas"]) == 3 and all(x["attempts"] > 0 for x in r["replicas"])'

step "done"
echo "compose-postgres.sh: PASS (mutex oversold across 3 replicas, atomic held)"
