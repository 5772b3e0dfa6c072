#!/usr/bin/env bash
# Renders the Kubernetes manifests (deploy/kubernetes/overlays/*) with `kubectl kustomize` and
# validates them offline against the Kubernetes JSON schemas with kubernetes-validate (PyPI,
# pinned in .ci/requirements.txt; from CI's virtual environment, .ci/venv.sh, unless one is on
# PATH already), strictly (unknown fields are errors). Then checks the project's own rules on every rendered workload:
# non-root, read-only root filesystem, no privilege escalation, resource requests and limits,
# and probes on everything that serves a port. No cluster is started (none can be, here).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v kubectl >/dev/null || { echo "kubernetes.sh: kubectl is not installed" >&2; exit 1; }
if ! command -v kubernetes-validate >/dev/null; then
    # shellcheck source=../.ci/venv.sh
    source .ci/venv.sh >/dev/null
fi
command -v kubernetes-validate >/dev/null || {
    echo "kubernetes.sh: kubernetes-validate is missing from .ci/venv.sh's environment" >&2
    exit 1
}

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0
for overlay in deploy/kubernetes/overlays/*/; do
    name=$(basename "$overlay")
    rendered="$out/$name.yaml"
    kubectl kustomize "$overlay" >"$rendered"
    if kubernetes-validate --strict --quiet "$rendered"; then
        echo "kubernetes.sh: $name: valid against the Kubernetes schemas"
    else
        echo "kubernetes.sh: $name: INVALID" >&2
        status=1
    fi
    python3 - "$rendered" "$name" <<'PY' || status=1
import sys
import yaml

path, name = sys.argv[1], sys.argv[2]
problems = []
kinds = {}
with open(path) as f:
    docs = [d for d in yaml.safe_load_all(f) if d]
for doc in docs:
    kinds.setdefault(doc["kind"], []).append(doc["metadata"]["name"])
    if doc["kind"] not in ("Deployment", "StatefulSet"):
        continue
    pod = doc["spec"]["template"]["spec"]
    where = f'{doc["kind"]}/{doc["metadata"]["name"]}'
    if not pod.get("securityContext", {}).get("runAsNonRoot"):
        problems.append(f"{where}: runAsNonRoot is not set")
    for c in pod["containers"]:
        sc = c.get("securityContext", {})
        if not sc.get("readOnlyRootFilesystem"):
            problems.append(f"{where}/{c['name']}: root filesystem is writable")
        if sc.get("allowPrivilegeEscalation", True):
            problems.append(f"{where}/{c['name']}: privilege escalation allowed")
        res = c.get("resources", {})
        if not res.get("requests") or not res.get("limits"):
            problems.append(f"{where}/{c['name']}: no resource requests and limits")
        if c.get("ports") and not (c.get("readinessProbe") and c.get("livenessProbe")):
            problems.append(f"{where}/{c['name']}: serves a port without probes")
for want in ("server", "coordinator", "worker"):
    if want not in kinds.get("Deployment", []):
        problems.append(f"no Deployment {want}")
for want in ("server", "coordinator"):
    if want not in kinds.get("Service", []):
        problems.append(f"no Service {want}")
if "flashsale-tokens" not in kinds.get("Secret", []):
    problems.append("no Secret flashsale-tokens")
if name == "postgres" and "postgres" not in kinds.get("StatefulSet", []):
    problems.append("no StatefulSet postgres")
for p in problems:
    print(f"kubernetes.sh: {name}: {p}", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"kubernetes.sh: {name}: {len(docs)} resources follow the rules "
      f"(non-root, read-only root, limits, probes)")
PY
done
exit "$status"
