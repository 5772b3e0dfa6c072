#!/usr/bin/env bash
# End-to-end test of the Docker Compose setup: builds the FROM scratch image through compose
# from source (the multi-stage Dockerfile, what `docker compose up` does for a user with only
# Docker); a first `run driver` on the stopped stack starts server + coordinator + 3 workers by
# itself (the driver service depends on them) and passes; containers of the same image that
# present a wrong or no cluster token cannot join (they exit 2, UNAUTHENTICATED in their log,
# and runs still count the stack's 3 workers), nor can a client submit a run without it. Then
# it runs buggy and safe through the coordinator with the `driver` service and checks exit
# codes and JSON reports, stops one worker in the middle of a sustained run (and cuts another
# off the network in a second one) and checks the run still finishes, reporting that worker
# lost, and that workers rejoin by themselves (Docker's restart policy) when the coordinator
# restarts.
#
# The stack's secrets are the compose file's variables: this test sets its own cluster token
# (FLASHSALE_CLUSTER_TOKEN), so the demo default is not what makes it pass.
#
# How the image is built, FLASHSALE_COMPOSE_BUILD:
#   source    (default) `compose build` with the Dockerfile: a Rust builder stage, then FROM
#             scratch. FLASHSALE_BUILDER_IMAGE names the builder (the Dockerfile's default,
#             rust:1-bookworm, must then be pullable); where nothing can be pulled, as in CI:
#                 FLASHSALE_BUILDER_IMAGE=$(bash .ci/builder-image.sh) bash tests/compose.sh
#   prebuilt  scripts/build-static.sh on the host, then Dockerfile.prebuilt (needs Rust; the
#             quick one for a developer who just changed the code).
# The build's layers are removed on exit like everything else (FLASHSALE_KEEP_BUILD_CACHE=1
# keeps them, for a faster next run).
#
# Needs Docker (with `docker compose` or `docker-compose`) and python3. Runs as its own
# compose project with a throwaway image tag and free host ports, so it never touches a
# `docker compose up` of yours; everything it creates is removed on exit, pass or fail.
set -euo pipefail
cd "$(dirname "$0")/.."

build=${FLASHSALE_COMPOSE_BUILD:-source}
case "$build" in
source | prebuilt) ;;
*) echo "compose.sh: FLASHSALE_COMPOSE_BUILD is source or prebuilt, not '$build'" >&2; exit 2 ;;
esac

if docker compose version >/dev/null 2>&1; then
    dc=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    dc=(docker-compose)
else
    echo "compose.sh: needs the docker compose plugin or docker-compose" >&2
    exit 2
fi

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
export COMPOSE_PROJECT_NAME="flashsale-test-$$"
export FLASHSALE_IMAGE="flashsale:test-$$"
FLASHSALE_SERVER_PORT=$(free_port)
FLASHSALE_COORDINATOR_PORT=$(free_port)
FLASHSALE_WEB_PORT=$(free_port)
export FLASHSALE_SERVER_PORT FLASHSALE_COORDINATOR_PORT FLASHSALE_WEB_PORT
FLASHSALE_CLUSTER_TOKEN="compose-test-$$-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
export FLASHSALE_CLUSTER_TOKEN
network="${COMPOSE_PROJECT_NAME}_flashsale"
# Containers this script starts with `docker run` (not compose): removed before `down`, which
# cannot remove a network they are still attached to.
intruders=()
tmp=$(mktemp -d "${TMPDIR:-/tmp}/flashsale-compose.XXXXXX")

# shellcheck source=tests/lib.sh
source tests/lib.sh

cleanup() {
    local rc=$?
    trap - EXIT
    if [ "$rc" -ne 0 ]; then
        echo "=== compose.sh failed (exit $rc); containers and their logs:" >&2
        "${dc[@]}" ps -a >&2 || true
        "${dc[@]}" logs --no-color --timestamps >&2 || true
        for c in "${intruders[@]}"; do
            echo "=== $c (docker run, not compose):" >&2
            docker logs --timestamps "$c" >&2 || true
        done
    fi
    for c in "${intruders[@]}"; do docker rm -f "$c" >/dev/null 2>&1 || true; done
    "${dc[@]}" down -v --remove-orphans --rmi all >/dev/null 2>&1 || true
    # One-off `run` containers left behind by an interrupted run.
    docker ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" |
        xargs -r docker rm -f >/dev/null 2>&1 || true
    docker image rm "$FLASHSALE_IMAGE" "$FLASHSALE_IMAGE-prebuilt" >/dev/null 2>&1 || true
    # The builder stages' untagged images (GBs: the toolchain and target/), which the classic
    # builder keeps as cache, labelled by the Dockerfile with this build's id.
    if [ "${FLASHSALE_KEEP_BUILD_CACHE:-0}" != 1 ]; then
        docker images -aq --filter "label=org.flashsale.build=$COMPOSE_PROJECT_NAME" |
            xargs -r docker image rm >/dev/null 2>&1 || true
    fi
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

healthy() { [ "$(docker inspect -f '{{.State.Health.Status}}' "$("${dc[@]}" ps -q "$1")")" = healthy ]; }
coordinator_id() { "${dc[@]}" ps -q coordinator; }
# The coordinator's own health service is SERVING only while all expected workers are connected.
all_workers_joined() {
    docker exec "$(coordinator_id)" /driver probe localhost:7000 --service flashsale.v1.Coordinator
}
# run_driver OUT ARGS...: `docker compose run --rm driver ARGS`, JSON report into OUT; returns
# the driver's exit status.
run_driver() {
    local out=$1
    shift
    timeout 180 "${dc[@]}" run --rm -T driver --output json "$@" >"$out"
}
# check_json FILE PYTHON_EXPR...: each expression, with `r` the parsed report, must be true.
check_json() {
    python3 - "$@" <<'EOF'
import json, sys
path, exprs = sys.argv[1], sys.argv[2:]
with open(path) as f:
    r = json.load(f)
bad = [e for e in exprs if not eval(e, {"r": r})]
for e in bad:
    print(f"compose.sh: FAIL: {path}: expected {e}", file=sys.stderr)
if bad:
    print(json.dumps(r, indent=2), file=sys.stderr)
    sys.exit(1)
print(f"  {path.rsplit('/', 1)[-1]}: " + "; ".join(exprs))
EOF
}

build_start=$SECONDS
case "$build" in
source)
    step "image $FLASHSALE_IMAGE from source through compose (Dockerfile, builder ${FLASHSALE_BUILDER_IMAGE:-rust:1-bookworm})"
    [ -z "${FLASHSALE_BUILDER_IMAGE:-}" ] || export FLASHSALE_BUILDER_IMAGE
    "${dc[@]}" build --build-arg FLASHSALE_BUILD="$COMPOSE_PROJECT_NAME" server >"$tmp/build.log" 2>&1 ||
        { tail -n 60 "$tmp/build.log" >&2; fail "compose build failed"; }
    # The dependencies' build, then the workspace's (cargo's colours stripped).
    sed 's/\x1b\[[0-9;]*m//g' "$tmp/build.log" | grep -E 'Finished' | sed 's/^ */  cargo: /' || true
    ;;
prebuilt)
    step "static binaries (scripts/build-static.sh), image $FLASHSALE_IMAGE from them (Dockerfile.prebuilt)"
    scripts/build-static.sh
    docker build -q -t "$FLASHSALE_IMAGE" -f Dockerfile.prebuilt dist >/dev/null
    ;;
esac
echo "  built in $((SECONDS - build_start))s; $(docker image inspect -f '{{.Size}}' "$FLASHSALE_IMAGE") bytes"
# FLASHSALE_KEEP_IMAGE=NAME: the image is also tagged NAME, which is left in place (the caller
# removes it): .ci/run hands it to tests/compose-postgres.sh instead of building it twice.
if [ -n "${FLASHSALE_KEEP_IMAGE:-}" ]; then docker tag "$FLASHSALE_IMAGE" "$FLASHSALE_KEEP_IMAGE"; fi
# The image's binaries, on the host: static, so its driver runs here too (the host-side probe
# below).
mkdir "$tmp/dist"
cid=$(docker create "$FLASHSALE_IMAGE")
for f in /server /driver /etc/flashsale-build; do docker cp "$cid:$f" "$tmp/dist/"; done
docker rm "$cid" >/dev/null
sed 's/^/  /' "$tmp/dist/flashsale-build"
if [ "$build" = source ]; then
    # The other path's Dockerfile, on these binaries: it must make the same image (what
    # Dockerfile.prebuilt does with the dist/ of scripts/build-static.sh).
    step "Dockerfile.prebuilt packs the same binaries into the same layout"
    mv "$tmp/dist/flashsale-build" "$tmp/dist/built-by-scripts-build-static.sh"
    prebuilt="$FLASHSALE_IMAGE-prebuilt"
    # (stderr kept for a failure only: the classic builder's deprecation notice is noise here.)
    docker build -q -t "$prebuilt" -f Dockerfile.prebuilt "$tmp/dist" >/dev/null 2>"$tmp/prebuilt.err" ||
        { cat "$tmp/prebuilt.err" >&2; fail "docker build -f Dockerfile.prebuilt failed"; }
    same() { docker image inspect -f "$1" "$FLASHSALE_IMAGE"; }
    for field in '{{json .Config.Entrypoint}} {{.Config.User}} {{json .Config.Env}} {{json .Config.ExposedPorts}}' '{{.Size}}'; do
        [ "$(same "$field")" = "$(docker image inspect -f "$field" "$prebuilt")" ] ||
            fail "Dockerfile.prebuilt's image differs in $field: $(docker image inspect -f "$field" "$prebuilt") vs $(same "$field")"
    done
    docker run --rm --entrypoint /driver "$prebuilt" --version >/dev/null
    docker image rm "$prebuilt" >/dev/null
    echo "  same entrypoint, user, environment, ports and size; its driver runs"
fi

step "run driver before up (${dc[*]}, project $COMPOSE_PROJECT_NAME): starts the stack itself, 3 workers, pass"
# The driver service depends on the workers (and they on the coordinator and the server), so a
# `run` on a stack nobody started starts it instead of waiting --join-timeout (60 s) for workers.
first_start=$SECONDS
rc=0
run_driver "$tmp/first.json" --mode safe || rc=$?
[ "$rc" -eq 0 ] || fail "run on a stopped stack exited $rc, expected 0"
check_json "$tmp/first.json" \
    'r["verdict"] == "pass"' \
    'len(r["workers"]) == 3' \
    'not any(w["lost"] for w in r["workers"])'
echo "  took $((SECONDS - first_start))s, stack start included"

step "compose up: the stack started by run is the stack up manages"
timeout 120 "${dc[@]}" up -d --no-build
wait_until 60 "server healthy" healthy server
wait_until 60 "coordinator healthy" healthy coordinator
mapfile -t workers < <("${dc[@]}" ps -q worker)
[ "${#workers[@]}" -eq 3 ] || fail "expected 3 worker containers, found ${#workers[@]}"
wait_until 60 "3 workers joined the coordinator" all_workers_joined

step "from the host: the published server port; from a container: service-name DNS"
"$tmp/dist/driver" probe "127.0.0.1:$FLASHSALE_SERVER_PORT"
timeout 60 "${dc[@]}" run --rm -T --no-deps driver probe server:50051
echo "  ok"

# intruder NAME ENV...: a container of the stack's image on the stack's network, running
# `driver worker` against the coordinator with the environment ENV... (and nothing from the
# compose file: no cluster token unless ENV gives one). Detached; named NAME in reports.
intruder() {
    local name=$1
    shift
    local envs=()
    for e in "$@"; do envs+=(-e "$e"); done
    intruders+=("$name")
    docker run -d --name "$name" --network "$network" "${envs[@]}" \
        -e FLASHSALE_WORKER_NAME="$name" -e FLASHSALE_COORDINATOR=http://coordinator:7000 \
        --entrypoint /driver "$FLASHSALE_IMAGE" worker >/dev/null
}
exited() { [ "$(docker inspect -f '{{.State.Running}}' "$1")" = false ]; }
# What a worker refused with UNAUTHENTICATED says (the driver words the code: "the coordinator
# refused this worker: <the coordinator's reason>"), and what a client refused so says (tonic's
# description of the UNAUTHENTICATED code, after the coordinator's reason).
worker_refused='unauthenticated|refused this worker'
client_refused='unauthenticated|valid authentication credentials'
# refused NAME: the intruder exited with status 2 and its log says the coordinator refused it
# for its token.
refused() {
    local name=$1 code
    wait_until 30 "$name exited" exited "$name"
    code=$(docker inspect -f '{{.State.ExitCode}}' "$name")
    if [ "$code" -ne 2 ] || ! docker logs "$name" 2>&1 | grep -Eqi "$worker_refused"; then
        docker logs "$name" >&2 || true
        fail "$name: exit $code, expected 2 with UNAUTHENTICATED ($worker_refused) in its log"
    fi
    echo "  $name: exit 2: $(docker logs "$name" 2>&1 | grep -Ei -m1 "$worker_refused" | cut -c1-160)"
}

step "the coordinator's dashboard on the published port: the page, and starting a run needs the cluster token"
web="http://127.0.0.1:$FLASHSALE_WEB_PORT"
csrf=$(curl -fsS --max-time 10 "$web/" | sed -n 's/.*name="csrf-token" content="\([^"]*\)".*/\1/p')
[ -n "$csrf" ] || { echo "the dashboard page carries no CSRF token" >&2; exit 1; }
start_run() { # start_run BODY [AUTH...]: the HTTP status of POST /api/runs
    curl -s --max-time 10 -o /dev/null -w '%{http_code}' -X POST -H "x-csrf-token: $csrf" \
        -H 'content-type: application/json' "${@:2}" -d "$1" "$web/api/runs"
}
code=$(start_run '{"mode":"safe","users":"100"}')
[ "$code" = 401 ] || { echo "a start without the cluster token got HTTP $code, not 401" >&2; exit 1; }
code=$(start_run '{"mode":"safe","users":"0"}' -H "authorization: Bearer $FLASHSALE_CLUSTER_TOKEN")
[ "$code" = 400 ] || { echo "a start with the token and 0 users got HTTP $code, not 400" >&2; exit 1; }
echo "  page served; without the token 401; with it the form is validated (400 for 0 users)"

step "workers without the cluster token cannot join: a wrong one, none at all"
intruder "$COMPOSE_PROJECT_NAME-intruder-wrong" FLASHSALE_CLUSTER_TOKEN="not-$FLASHSALE_CLUSTER_TOKEN"
intruder "$COMPOSE_PROJECT_NAME-intruder-none"
refused "$COMPOSE_PROJECT_NAME-intruder-wrong"
refused "$COMPOSE_PROJECT_NAME-intruder-none"

step "a client with a wrong cluster token cannot submit a run: exit 2, UNAUTHENTICATED"
rc=0
timeout 60 "${dc[@]}" run --rm -T -e FLASHSALE_CLUSTER_TOKEN="not-$FLASHSALE_CLUSTER_TOKEN" \
    driver --mode safe --output json >"$tmp/refused.json" 2>"$tmp/refused.err" || rc=$?
if [ "$rc" -ne 2 ] || ! grep -Eqi "$client_refused" "$tmp/refused.err"; then
    cat "$tmp/refused.err" >&2
    fail "client with a wrong token: exit $rc, expected 2 with UNAUTHENTICATED ($client_refused) on stderr"
fi
echo "  exit 2: $(grep -Ei -m1 "$client_refused" "$tmp/refused.err" | cut -c1-160)"

step "safe run through the coordinator: exit 0, pass, 100 sold, stock 0, the stack's 3 workers only"
rc=0
run_driver "$tmp/safe.json" --mode safe || rc=$?
[ "$rc" -eq 0 ] || fail "safe run exited $rc, expected 0"
check_json "$tmp/safe.json" \
    'r["verdict"] == "pass" and r["audit"]["verdict"] == "pass"' \
    'r["outcomes"]["purchased"] == 100' \
    'r["audit"]["final_stock"] == 0' \
    'len(r["workers"]) == 3' \
    'not any(w["lost"] for w in r["workers"])' \
    'not any("intruder" in w["name"] for w in r["workers"])'

step "buggy run through the coordinator: exit 1, oversold"
rc=0
run_driver "$tmp/buggy.json" --mode buggy || rc=$?
[ "$rc" -eq 1 ] || fail "buggy run exited $rc, expected 1"
check_json "$tmp/buggy.json" \
    'r["verdict"] == "fail"' \
    'r["audit"]["oversold_units"] > 0'

# lose_mid_run OUT WORKER ACTION...: an 8 s sustained safe run through the coordinator; about 2 s
# into the load, `ACTION... WORKER`. The run must still finish with exit 3 (the audit held but a
# worker was lost; 1 would be a failed audit, 2 no audit at all) and WORKER, by name, the only
# one reported lost.
lose_mid_run() {
    local out=$1 worker=$2
    shift 2
    local name before rc=0 run_pid
    name=$(docker inspect -f '{{.Config.Hostname}}' "$worker") # a worker's default name
    before=$(assignments "$worker")
    run_driver "$out" --mode safe --duration 8s &
    run_pid=$!
    wait_until 60 "worker $name assigned its share" has_new_assignment "$worker" "$before"
    sleep 3.5 # the coordinator starts the load 1.5 s after the assignment: act ~2 s into it
    "$@" "$worker" >/dev/null
    echo "  $* $name at ${SECONDS}s"
    wait "$run_pid" || rc=$?
    [ "$rc" -eq 3 ] || fail "run with a lost worker ($*) exited $rc, expected 3"
    check_json "$out" \
        'r["verdict"] == "pass" and r["audit"]["verdict"] == "pass"' \
        'r["audit"]["oversold_units"] == 0' \
        'len(r["workers"]) == 3' \
        "[w['name'] for w in r['workers'] if w['lost']] == ['$name']"
}
# Workers log "run assigned" (info) when they receive their share of a run.
assignments() { docker logs "$1" 2>&1 | grep -c 'run assigned' || true; }
has_new_assignment() { [ "$(assignments "$1")" -gt "$2" ]; }

step "sustained safe run (8s), one worker stopped ~2s in: finishes, that worker lost (exit 3)"
wait_until 30 "3 workers joined the coordinator" all_workers_joined
mapfile -t workers < <("${dc[@]}" ps -q worker)
victim=${workers[0]}
lose_mid_run "$tmp/lost.json" "$victim" docker stop -t 5

step "the stopped worker rejoins when started again"
docker start "$victim" >/dev/null
wait_until 60 "3 workers joined the coordinator" all_workers_joined

step "sustained safe run (8s), one worker cut off the network ~2s in: finishes, that worker lost (exit 3)"
mapfile -t workers < <("${dc[@]}" ps -q worker)
for w in "${workers[@]}"; do [ "$w" != "$victim" ] && cut=$w && break; done
lose_mid_run "$tmp/cut.json" "$cut" docker network disconnect "$network"
docker network connect "$network" "$cut"
echo "  reconnected it"

step "coordinator restarted: workers exit non-zero, Docker restarts them (on-failure), they rejoin"
docker restart -t 5 "$(coordinator_id)" >/dev/null
wait_until 60 "coordinator healthy" healthy coordinator
wait_until 60 "3 workers joined the coordinator" all_workers_joined
for w in $("${dc[@]}" ps -q worker); do
    restarts=$(docker inspect -f '{{.RestartCount}}' "$w")
    [ "$restarts" -ge 1 ] || fail "worker ${w:0:12} was not restarted by Docker"
done
echo "  every worker restarted by Docker and rejoined"

step "done"
