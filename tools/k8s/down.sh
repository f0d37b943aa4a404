#!/usr/bin/env bash
# Stops the local control plane that tools/k8s/up.sh started: each process
# recorded in .k8s/pids, with its whole process group (up.sh starts each in a
# session of its own), then every command kwok ran for `exec` that still runs
# (marked by CIPLAT_KWOK_EXEC in its environment). SIGTERM
# first, SIGKILL after 10 seconds. Keeps .k8s/logs for a look afterwards; the
# data, keys and kubeconfigs go. Does nothing when nothing runs.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
K8S_DIR="${CIPLAT_K8S_DIR:-$repo/.k8s}"

log() { echo "k8s-down: $*" >&2; }

[ -d "$K8S_DIR/pids" ] || { log "nothing recorded in $K8S_DIR/pids"; exit 0; }

# Reverse order of start: the kubelet first, etcd last.
for c in kwok kube-scheduler kube-apiserver etcd; do
  f="$K8S_DIR/pids/$c.pid"
  [ -f "$f" ] || continue
  pid="$(cat "$f")"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q "$c" "/proc/$pid/cmdline" 2>/dev/null; then
    # The process group is the PID itself when up.sh's setsid made it a
    # session leader; signal only the PID otherwise.
    target="$pid"
    [ "$(ps -o pgid= -p "$pid" | tr -d ' ')" = "$pid" ] && target="-$pid"
    kill -TERM -- "$target" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "$c (pid $pid) did not stop in 10s; SIGKILL"
      kill -KILL -- "$target" 2>/dev/null || true
    fi
    # What is left of the group (exec'd commands that ignored SIGTERM).
    [ "$target" = "$pid" ] || kill -KILL -- "$target" 2>/dev/null || true
    log "stopped $c (pid $pid)"
  fi
  rm -f "$f"
done
# Commands run by kwok for exec that are still running, with what they
# started, also those that left kwok's process group (setsid) or were
# orphaned: up.sh's ClusterExec marks them all with CIPLAT_KWOK_EXEC=<this
# folder> in their environment.
marker="CIPLAT_KWOK_EXEC=$K8S_DIR"
left=()
for env in /proc/[0-9]*/environ; do
  pid="${env#/proc/}"; pid="${pid%/environ}"
  [ "$pid" != "$$" ] || continue
  if { tr '\0' '\n' <"$env"; } 2>/dev/null | grep -qxF -- "$marker"; then left+=("$pid"); fi
done
if [ ${#left[@]} -gt 0 ]; then
  kill -KILL "${left[@]}" 2>/dev/null || true
  log "killed ${#left[@]} leftover exec'd process(es): ${left[*]}"
fi
rm -rf "$K8S_DIR/pids" "$K8S_DIR/etcd" "$K8S_DIR/pki" "$K8S_DIR/env" "$K8S_DIR/ports.env" \
  "$K8S_DIR"/kubeconfig*
