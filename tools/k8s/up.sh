#!/usr/bin/env bash
# Starts the local Kubernetes control plane for ciplat's tests, on 127.0.0.1
# only: etcd, kube-apiserver, kube-scheduler and kwok (a fake kubelet for the
# Nodes annotated kwok.x-k8s.io/node=fake). Everything lives in .k8s/ at the
# top of the repository (git ignores it):
#
#   .k8s/kubeconfig          admin (group system:masters)
#   .k8s/kubeconfig-driver   user ciplat-driver, no groups: only what RBAC grants it
#   .k8s/kubeconfig-nobody   user ciplat-nobody, no groups, never granted anything
#   .k8s/env                 CIPLAT_K8S_* variables to source
#   .k8s/ports.env           the ports picked at start
#   .k8s/pids/NAME.pid       one per process; .k8s/logs/NAME.log their output
#   .k8s/exec                where kwok runs `exec` commands (on this host)
#
# Idempotent: when the recorded processes are alive and the API server is ready
# it does nothing. If any step fails it stops what it started (tools/k8s/down.sh).
# Binaries come from tools/k8s/build.sh (cached; built here when missing).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
K8S_DIR="${CIPLAT_K8S_DIR:-$repo/.k8s}"
export K8S_DIR
comps=(etcd kube-apiserver kube-scheduler kwok)

log() { echo "k8s-up: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

alive() { # NAME: the recorded PID is alive and is that program
  local f="$K8S_DIR/pids/$1.pid" pid
  [ -f "$f" ] || return 1
  pid="$(cat "$f")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  grep -q "$1" "/proc/$pid/cmdline" 2>/dev/null
}

# up.sh -check: exit 0 when a control plane runs and is ready, 1 otherwise.
check=0
case "${1:-}" in
  -check) check=1 ;;
  "") ;;
  *) echo "usage: $0 [-check]" >&2; exit 2 ;;
esac

# Already running?
if [ "$check" = 1 ] && ! [ -f "$K8S_DIR/env" ]; then exit 1; fi
if [ -f "$K8S_DIR/kubeconfig" ] && [ -f "$K8S_DIR/ports.env" ]; then
  all=1
  for c in "${comps[@]}"; do alive "$c" || all=0; done
  if [ "$all" = 1 ]; then
    # shellcheck disable=SC1091
    . "$K8S_DIR/ports.env"
    if curl -fsS --max-time 5 --cacert "$K8S_DIR/pki/ca.crt" "https://127.0.0.1:$APISERVER_PORT/readyz" >/dev/null 2>&1; then
      [ "$check" = 1 ] || log "already running (API server https://127.0.0.1:$APISERVER_PORT, kubeconfig $K8S_DIR/kubeconfig)"
      exit 0
    fi
  fi
  [ "$check" = 0 ] || exit 1
  log "a previous control plane in $K8S_DIR is not healthy; stopping it first"
  "$here/down.sh"
fi
for c in "${comps[@]}"; do
  if alive "$c"; then die "$c is still running (pid $(cat "$K8S_DIR/pids/$c.pid")); run tools/k8s/down.sh"; fi
done

for t in openssl curl ss; do
  command -v "$t" >/dev/null || die "$t is needed (apt-get install openssl curl iproute2)"
done

BIN="$("$here/build.sh")"
[ -x "$BIN/kube-apiserver" ] || die "build.sh gave no binaries in $BIN"
STAGES="$(dirname "$BIN")/stages"
CRDS="$(dirname "$BIN")/crds"

start_ts=$(date +%s)
# Start from an empty folder; remove only one that up.sh made (its marker).
if [ -d "$K8S_DIR" ] && [ -n "$(ls -A "$K8S_DIR")" ] && [ ! -f "$K8S_DIR/.ciplat-k8s" ]; then
  die "$K8S_DIR is not empty and was not made by up.sh; move it away or set CIPLAT_K8S_DIR"
fi
rm -rf "$K8S_DIR"
mkdir -p "$K8S_DIR"/{pids,logs,pki,etcd,exec,manifests}
echo "made by tools/k8s/up.sh; removed and made again by each start" >"$K8S_DIR/.ciplat-k8s"
chmod 700 "$K8S_DIR/pki"

# From here on, a failure stops whatever was started.
ok=0
cleanup() {
  if [ "$ok" != 1 ]; then
    log "start failed; the last lines of the logs:"
    for c in "${comps[@]}"; do
      [ -f "$K8S_DIR/logs/$c.log" ] && { echo "--- $c" >&2; tail -n 15 "$K8S_DIR/logs/$c.log" >&2; }
    done
    "$here/down.sh" >&2 || true
  fi
}
trap cleanup EXIT

# ---- ports: free ones on 127.0.0.1, picked now ----
# Below the kernel's ephemeral range (32768-60999), so no outgoing
# connection takes one before its server binds it.
taken=" "
free_port() { # VAR: set VAR to a port nothing uses and not given out yet
  local p i
  for i in $(seq 1 200); do
    p=$(( 20000 + RANDOM % 12000 ))
    case "$taken" in *" $p "*) continue ;; esac
    if [ -z "$(ss -Htan "( sport = :$p )" 2>/dev/null)" ]; then
      taken="$taken$p "
      printf -v "$1" '%s' "$p"
      return 0
    fi
  done
  die "no free port found in 20000-31999"
}
free_port ETCD_PORT
free_port ETCD_PEER_PORT
free_port APISERVER_PORT
free_port SCHEDULER_PORT
free_port KWOK_PORT
cat >"$K8S_DIR/ports.env" <<EOF
ETCD_PORT=$ETCD_PORT
ETCD_PEER_PORT=$ETCD_PEER_PORT
APISERVER_PORT=$APISERVER_PORT
SCHEDULER_PORT=$SCHEDULER_PORT
KWOK_PORT=$KWOK_PORT
EOF

# ---- certificates and keys ----
pki="$K8S_DIR/pki"
ossl() { openssl "$@" 2>>"$K8S_DIR/logs/openssl.log" >/dev/null || die "openssl $1 failed (see $K8S_DIR/logs/openssl.log)"; }
ossl req -x509 -newkey rsa:2048 -nodes -keyout "$pki/ca.key" -out "$pki/ca.crt" -days 365 -subj "/CN=ciplat-test-ca"
sign() { # NAME SUBJECT EXT
  ossl req -newkey rsa:2048 -nodes -keyout "$pki/$1.key" -out "$pki/$1.csr" -subj "$2"
  printf '%s\n' "$3" >"$pki/$1.ext"
  ossl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -out "$pki/$1.crt" -days 365 -extfile "$pki/$1.ext"
}
sign apiserver "/CN=kube-apiserver" "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1
extendedKeyUsage=serverAuth"
sign kwok "/CN=kwok" "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth"
sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "extendedKeyUsage=clientAuth"
ossl genrsa -out "$pki/sa.key" 2048
ossl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub"

# ---- users: static tokens ----
tok() { openssl rand -hex 24; }
ADMIN_TOKEN=$(tok) DRIVER_TOKEN=$(tok) NOBODY_TOKEN=$(tok) SCHED_TOKEN=$(tok) KWOK_TOKEN=$(tok)
# token,user,uid,"group1,group2"
cat >"$pki/tokens.csv" <<EOF
$ADMIN_TOKEN,ciplat-admin,ciplat-admin,"system:masters"
$DRIVER_TOKEN,ciplat-driver,ciplat-driver
$NOBODY_TOKEN,ciplat-nobody,ciplat-nobody
$SCHED_TOKEN,system:kube-scheduler,system:kube-scheduler
$KWOK_TOKEN,kwok-controller,kwok-controller,"system:masters"
EOF
chmod 600 "$pki/tokens.csv"

kubeconfig() { # FILE USER TOKEN
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: ciplat-local
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $pki/ca.crt
users:
- name: $2
  user:
    token: $3
contexts:
- name: $2@ciplat-local
  context:
    cluster: ciplat-local
    user: $2
    namespace: default
current-context: $2@ciplat-local
EOF
  chmod 600 "$1"
}
kubeconfig "$K8S_DIR/kubeconfig" ciplat-admin "$ADMIN_TOKEN"
kubeconfig "$K8S_DIR/kubeconfig-driver" ciplat-driver "$DRIVER_TOKEN"
kubeconfig "$K8S_DIR/kubeconfig-nobody" ciplat-nobody "$NOBODY_TOKEN"
kubeconfig "$K8S_DIR/kubeconfig-scheduler" system:kube-scheduler "$SCHED_TOKEN"
kubeconfig "$K8S_DIR/kubeconfig-kwok" kwok-controller "$KWOK_TOKEN"

# ---- processes ----
launch() { # NAME ARGS...: start in its own session, record the PID
  local name="$1" pid i; shift
  setsid "$@" </dev/null >"$K8S_DIR/logs/$name.log" 2>&1 &
  pid=$!
  echo "$pid" >"$K8S_DIR/pids/$name.pid"
  # Until the forked shell has exec'd the program, its cmdline is this
  # script's, and alive would take it for a dead process (under load a
  # first readiness check came before the exec: "exited during start"
  # with an empty log). Wait for the exec, or for the process to end.
  for i in $(seq 1 100); do
    grep -q "$name" "/proc/$pid/cmdline" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
}
wait_for() { # NAME SECONDS CMD...: poll CMD until it succeeds; fail if NAME died
  local name="$1" secs="$2" i; shift 2
  for i in $(seq 1 $(( secs * 5 ))); do
    "$@" >/dev/null 2>&1 && return 0
    alive "$name" || die "$name exited during start (see $K8S_DIR/logs/$name.log)"
    sleep 0.2
  done
  die "$name was not ready after ${secs}s (see $K8S_DIR/logs/$name.log)"
}

launch etcd "$BIN/etcd" \
  --name=ciplat --data-dir="$K8S_DIR/etcd" \
  --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster="ciplat=http://127.0.0.1:$ETCD_PEER_PORT" \
  --unsafe-no-fsync --quota-backend-bytes=1073741824 --auto-compaction-retention=1 --log-level=warn
wait_for etcd 30 curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health"
log "etcd ready on 127.0.0.1:$ETCD_PORT"

# No controller manager runs: the endpoints of the kubernetes Service are not
# reconciled, no ServiceAccount objects exist (so its admission is off), and
# no node lifecycle controller taints nodes (so TaintNodesByCondition is off).
launch kube-apiserver "$BIN/kube-apiserver" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
  --client-ca-file="$pki/ca.crt" \
  --token-auth-file="$pki/tokens.csv" \
  --authorization-mode=Node,RBAC \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
  --service-cluster-ip-range=10.96.0.0/16 \
  --endpoint-reconciler-type=none \
  --disable-admission-plugins=ServiceAccount,TaintNodesByCondition \
  --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
  --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority="$pki/ca.crt" \
  --kubelet-preferred-address-types=InternalIP \
  --profiling=false
ready_api() {
  curl -fsS --max-time 2 --cacert "$pki/ca.crt" -H "Authorization: Bearer $ADMIN_TOKEN" \
    "https://127.0.0.1:$APISERVER_PORT/readyz"
}
wait_for kube-apiserver 90 ready_api
log "kube-apiserver ready on https://127.0.0.1:$APISERVER_PORT"

# No --authentication/authorization-kubeconfig: its own server then serves
# only the always-allowed /healthz, /readyz and /livez, which is all up.sh
# asks (with them it reads a front-proxy CA this API server has not, and
# logs an error each minute).
launch kube-scheduler "$BIN/kube-scheduler" \
  --kubeconfig="$K8S_DIR/kubeconfig-scheduler" \
  --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" \
  --leader-elect=false
wait_for kube-scheduler 60 curl -fsSk --max-time 2 "https://127.0.0.1:$SCHEDULER_PORT/healthz"
log "kube-scheduler ready on 127.0.0.1:$SCHEDULER_PORT"

KUBECTL=("$BIN/kubectl" --kubeconfig="$K8S_DIR/kubeconfig")

# kwok's CRDs first: its server reads Exec/Logs/... objects from the API.
# Only those of the kinds kwok is told to watch (--enable-crds below);
# stages come from its config file.
crd_args=()
for r in execs clusterexecs logs clusterlogs attaches clusterattaches portforwards clusterportforwards; do
  crd_args+=(-f "$CRDS/kwok.x-k8s.io_$r.yaml")
done
"${KUBECTL[@]}" apply "${crd_args[@]}" >"$K8S_DIR/logs/crds.log" 2>&1 || die "installing kwok's CRDs failed (see $K8S_DIR/logs/crds.log)"
"${KUBECTL[@]}" wait --for=condition=Established --timeout=60s crd --all >>"$K8S_DIR/logs/crds.log" 2>&1 \
  || die "kwok's CRDs were not established (see $K8S_DIR/logs/crds.log)"

{
  cat <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  enableDebuggingHandlers: true
  enableProfilingHandler: false
  enableContentionProfiling: false
  nodeLeaseDurationSeconds: 40
  nodeLeaseParallelism: 4
  podPlayStageParallelism: 4
  nodePlayStageParallelism: 4
  podsOnNodeSyncParallelism: 2
  enablePodsOnNodeSyncListPager: false
  enablePodsOnNodeSyncStreamWatch: true
EOF
  for s in "$STAGES"/*.yaml; do echo "---"; cat "$s"; done
} >"$K8S_DIR/kwok.yaml"

launch kwok "$BIN/kwok" \
  --config="$K8S_DIR/kwok.yaml" \
  --kubeconfig="$K8S_DIR/kubeconfig-kwok" \
  --manage-all-nodes=false \
  --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --node-ip=127.0.0.1 --node-port="$KWOK_PORT" --server-address="127.0.0.1:$KWOK_PORT" \
  --tls-cert-file="$pki/kwok.crt" --tls-private-key-file="$pki/kwok.key" \
  --cidr=10.244.0.0/16 \
  --enable-crds=Exec,ClusterExec,Logs,ClusterLogs,Attach,ClusterAttach,PortForward,ClusterPortForward
wait_for kwok 60 curl -fsS --max-time 2 --cacert "$pki/ca.crt" "https://127.0.0.1:$KWOK_PORT/healthz"
log "kwok ready on https://127.0.0.1:$KWOK_PORT"

# What kwok does for exec and logs, and the fake node Pods are placed on.
cat >"$K8S_DIR/logs/pod-default.log" <<EOF
$(date -u +%Y-%m-%dT%H:%M:%S.000000000Z) stdout F ciplat local control plane: kwok runs no containers; this line is the log of every Pod (see docs/kubernetes.md)
EOF
cat >"$K8S_DIR/manifests/cluster.yaml" <<EOF
# Every exec into any container of any Pod runs the command on this host,
# in $K8S_DIR/exec, as the user kwok runs as. CIPLAT_KWOK_EXEC marks the
# commands (and what they start) so that down.sh finds them all, even those
# that left kwok's process group.
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterExec
metadata:
  name: ciplat-local
spec:
  execs:
  - local:
      workDir: $K8S_DIR/exec
      envs:
      - name: CIPLAT_KWOK_EXEC
        value: $K8S_DIR
---
# Every Pod's log is this file (CRI log format); a Logs object named after a
# Pod, in its namespace, gives that Pod its own file.
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: ciplat-local
spec:
  logs:
  - logsFile: $K8S_DIR/logs/pod-default.log
    follow: true
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: kwok-node-0
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
status:
  allocatable:
    cpu: "32"
    memory: 256Gi
    pods: "110"
  capacity:
    cpu: "32"
    memory: 256Gi
    pods: "110"
EOF
"${KUBECTL[@]}" apply -f "$K8S_DIR/manifests/cluster.yaml" >"$K8S_DIR/logs/manifests.log" 2>&1 \
  || die "creating the ClusterExec, ClusterLogs and Node failed (see $K8S_DIR/logs/manifests.log)"
"${KUBECTL[@]}" wait --for=condition=Ready --timeout=60s node/kwok-node-0 >>"$K8S_DIR/logs/manifests.log" 2>&1 \
  || die "node kwok-node-0 did not become Ready (see $K8S_DIR/logs/kwok.log)"

cat >"$K8S_DIR/env" <<EOF
CIPLAT_K8S_KUBECONFIG=$K8S_DIR/kubeconfig
CIPLAT_K8S_KUBECONFIG_DRIVER=$K8S_DIR/kubeconfig-driver
CIPLAT_K8S_KUBECONFIG_NOBODY=$K8S_DIR/kubeconfig-nobody
CIPLAT_K8S_BIN=$BIN
CIPLAT_K8S_DIR=$K8S_DIR
EOF

ok=1
log "ready in $(( $(date +%s) - start_ts ))s: kubeconfig $K8S_DIR/kubeconfig (API server https://127.0.0.1:$APISERVER_PORT, node kwok-node-0)"
