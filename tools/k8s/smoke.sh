#!/usr/bin/env bash
# Smoke test of the local control plane (make k8s-smoke; start it with make
# k8s-up first): a Pod created with generateName is scheduled on the kwok node
# and Running; exec through the API server streams stdout and returns the exit
# code; the log API answers; the Pod is deleted; RBAC denies the users that
# were granted nothing.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
K8S_DIR="${CIPLAT_K8S_DIR:-$repo/.k8s}"
[ -f "$K8S_DIR/env" ] || { echo "k8s-smoke: no control plane in $K8S_DIR (run make k8s-up)" >&2; exit 1; }
# shellcheck disable=SC1091
. "$K8S_DIR/env"
k() { "$CIPLAT_K8S_BIN/kubectl" --kubeconfig="$CIPLAT_K8S_KUBECONFIG" "$@"; }
fail() { echo "k8s-smoke: FAIL: $*" >&2; exit 1; }
ns=default
pod=""
trap '[ -z "$pod" ] || k -n "$ns" delete pod "$pod" --grace-period=0 --ignore-not-found --wait=false >/dev/null 2>&1 || true' EXIT

t0=$(date +%s%N)
pod="$(k -n "$ns" create -o name -f - <<'EOF' | sed 's|^pod/||'
apiVersion: v1
kind: Pod
metadata:
  generateName: smoke-
  labels:
    app: ciplat-k8s-smoke
spec:
  containers:
  - name: main
    image: busybox:does-not-matter
    command: ["sleep", "infinity"]
    resources:
      requests: {cpu: 100m, memory: 64Mi}
      limits: {cpu: 100m, memory: 64Mi}
EOF
)"
[[ "$pod" == smoke-?* ]] || fail "generateName gave pod name '$pod'"
k -n "$ns" wait --for=condition=Ready --timeout=60s "pod/$pod" >/dev/null || fail "pod $pod not Ready in 60s"
phase="$(k -n "$ns" get pod "$pod" -o jsonpath='{.status.phase} {.spec.nodeName}')"
[ "$phase" = "Running kwok-node-0" ] || fail "pod $pod: phase/node is '$phase', want 'Running kwok-node-0'"
t1=$(date +%s%N)
echo "k8s-smoke: pod $pod Running on kwok-node-0 in $(( (t1 - t0) / 1000000 )) ms"

set +e
out="$(k -n "$ns" exec "$pod" -- sh -c 'echo hi; echo oops >&2; exit 3' 2>"$K8S_DIR/smoke-exec.err")"
rc=$?
set -e
[ "$out" = "hi" ] || fail "exec stdout is '$out', want 'hi' (stderr: $(cat "$K8S_DIR/smoke-exec.err"))"
[ "$rc" = 3 ] || fail "exec exit code is $rc, want 3 (stderr: $(cat "$K8S_DIR/smoke-exec.err"))"
grep -q oops "$K8S_DIR/smoke-exec.err" || fail "exec stderr lacks 'oops': $(cat "$K8S_DIR/smoke-exec.err")"
echo "k8s-smoke: exec ok (stdout 'hi', stderr 'oops', exit code 3)"

logs="$(k -n "$ns" logs "$pod")" || fail "kubectl logs $pod failed"
[[ "$logs" == *"ciplat local control plane"* ]] || fail "logs of $pod are '$logs'"
echo "k8s-smoke: logs ok"

for who in nobody driver; do
  cfg="$K8S_DIR/kubeconfig-$who"
  if err="$("$CIPLAT_K8S_BIN/kubectl" --kubeconfig="$cfg" -n "$ns" get pods 2>&1)"; then
    fail "user ciplat-$who may list pods without any Role: $err"
  fi
  [[ "$err" == *Forbidden* || "$err" == *forbidden* ]] || fail "user ciplat-$who: want Forbidden, got: $err"
done
echo "k8s-smoke: RBAC denies ciplat-nobody and (with no Role bound) ciplat-driver"

k -n "$ns" delete pod "$pod" --wait=true --timeout=60s >/dev/null || fail "deleting $pod failed"
if k -n "$ns" get pod "$pod" >/dev/null 2>&1; then fail "pod $pod still exists after delete"; fi
pod=""
t2=$(date +%s%N)
echo "k8s-smoke: pod deleted; create→Running→deleted round trip $(( (t2 - t0) / 1000000 )) ms"
echo "k8s-smoke: PASS"
