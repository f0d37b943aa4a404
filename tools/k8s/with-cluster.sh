#!/usr/bin/env bash
# with-cluster.sh CMD ARGS...: runs CMD with the local control plane up and
# its CIPLAT_K8S_* variables exported (see .k8s/env), then stops the control
# plane, also when CMD fails or is interrupted, and exits with CMD's status.
# A control plane that was already running (make k8s-up) is used and left
# running.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
K8S_DIR="${CIPLAT_K8S_DIR:-$repo/.k8s}"
[ $# -gt 0 ] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }

started=0
if ! "$here/up.sh" -check 2>/dev/null; then
  started=1
  # up.sh stops what it started when it fails.
  "$here/up.sh"
fi
stop() { if [ "$started" = 1 ]; then "$here/down.sh" || true; fi; }
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

set -a
# shellcheck disable=SC1091
. "$K8S_DIR/env"
set +a
set +e
"$@"
rc=$?
set -e
exit "$rc"
