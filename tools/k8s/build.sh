#!/usr/bin/env bash
# Builds the local Kubernetes control plane's binaries (etcd, kube-apiserver,
# kube-scheduler, kubectl, kwok) from the Go module proxy, with the separate
# module in this folder, into
#   ${CIPLAT_K8S_CACHE:-$HOME/.cache/ciplat-k8s}/<key>/bin
# where <key> is the Kubernetes version and a hash of everything that decides
# the binaries (go.mod, go.sum, the sources and _patches here, this script, the
# Go version). When that folder is complete it does nothing. Prints the bin
# folder on stdout as its last line; progress goes to stderr.
#
#   tools/k8s/build.sh          build if needed
#   tools/k8s/build.sh -f       build again even when cached
#   tools/k8s/build.sh -print   print the bin folder it would use, build nothing
#
# A cold build takes 10-25 minutes on 2 cores (more when they are shared),
# with up to 1.8 GB for the largest process (the linker) and 2.7 GB of Go
# build cache.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
force=0 print=0
case "${1:-}" in
  -f) force=1 ;;
  -print) print=1 ;;
  "") ;;
  *) echo "usage: $0 [-f|-print]" >&2; exit 2 ;;
esac

export PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || { echo "build.sh: go not found (expected /usr/local/go/bin/go)" >&2; exit 1; }

# The versions the binaries report; they must match go.mod (checked below).
K8S_VERSION=v1.36.3
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.8.0

# kwok v0.8.0's exec handler loses the exit code of the command it runs and
# never closes its stdin; _patches/kwok/ holds those files of kwok with the
# fixes, at their paths in kwok's module, and _patches/kwok/UPSTREAM.sha256 the
# sums of the originals they were made from: if a new kwok changes one, the
# patch has to be made again. See docs/kubernetes.md.

key_inputs() {
  cat "$here/go.mod" "$here/go.sum" "$here/tools.go" "$here/cmd/etcd/main.go" "$here/build.sh"
  (cd "$here/_patches" && find . -type f | LC_ALL=C sort | xargs sha256sum)
  go version
}
hash="$(key_inputs | sha256sum | cut -c1-12)"
cache="${CIPLAT_K8S_CACHE:-$HOME/.cache/ciplat-k8s}"
dir="$cache/$K8S_VERSION-$hash"
bin="$dir/bin"
bins=(etcd kube-apiserver kube-scheduler kubectl kwok)

if [ "$print" = 1 ]; then echo "$bin"; exit 0; fi

complete() {
  [ -f "$dir/.complete" ] || return 1
  for b in "${bins[@]}"; do [ -x "$bin/$b" ] || return 1; done
  [ -d "$dir/stages" ] || return 1
}
if [ "$force" = 0 ] && complete; then
  touch "$dir"
  echo "build.sh: cached in $dir" >&2
  echo "$bin"
  exit 0
fi

cd "$here"
for want in "k8s.io/kubernetes $K8S_VERSION" "go.etcd.io/etcd/server/v3 $ETCD_VERSION" "sigs.k8s.io/kwok $KWOK_VERSION"; do
  grep -q "^	$want\$" go.mod || { echo "build.sh: go.mod does not require $want; update the versions at the top of build.sh too" >&2; exit 1; }
done

echo "build.sh: building etcd $ETCD_VERSION, kube-apiserver/kube-scheduler/kubectl $K8S_VERSION, kwok $KWOK_VERSION into $dir (cold: 10-25 min)" >&2
start=$(date +%s)
# -mod=readonly: go.sum is committed, so a build never changes the module;
# -buildvcs=false: the binaries do not depend on the state of the git tree.
export GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0
go mod download sigs.k8s.io/kwok
kwok_dir="$(go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
if ! (cd "$kwok_dir" && sha256sum --quiet -c "$here/_patches/kwok/UPSTREAM.sha256" >&2); then
  echo "build.sh: kwok's files in $kwok_dir are not the ones tools/k8s/_patches/kwok was made from; redo the patches for this kwok" >&2
  exit 1
fi

mkdir -p "$cache"
tmp="$(mktemp -d "$cache/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# go build -overlay may not replace files in the module cache, so kwok is
# built from a patched copy of its module, through a go.mod of its own
# (-modfile) that replaces sigs.k8s.io/kwok with that copy. Only kwok's own
# packages compile again; every dependency comes from the build cache.
cp -r "$kwok_dir" "$tmp/kwok"
chmod -R u+w "$tmp/kwok"
(cd "$here/_patches/kwok" && find . -name '*.go' -type f) | while read -r f; do
  cp "$here/_patches/kwok/$f" "$tmp/kwok/$f"
done
cp go.mod "$tmp/kwok-build.mod"
cp go.sum "$tmp/kwok-build.sum"
printf '\nreplace sigs.k8s.io/kwok => %s\n' "$tmp/kwok" >>"$tmp/kwok-build.mod"

now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
k8s_ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/component-base/version.buildDate=$now \
 -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION \
 -X k8s.io/client-go/pkg/version.gitMajor=1 \
 -X k8s.io/client-go/pkg/version.gitMinor=$minor"

mkdir -p "$tmp/bin"
go build -trimpath -ldflags "$k8s_ldflags" -o "$tmp/bin/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubectl
go build -trimpath -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=module-$ETCD_VERSION" \
  -o "$tmp/bin/etcd" ./cmd/etcd
go build -trimpath -modfile "$tmp/kwok-build.mod" \
  -ldflags "-s -w $k8s_ldflags -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v} -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${K8S_VERSION#v}" \
  -o "$tmp/bin/kwok" sigs.k8s.io/kwok/cmd/kwok

# kwok's default stages (what kwokctl uses): node-initialize, the node
# heartbeat with lease, and the fast pod lifecycle.
mkdir -p "$tmp/stages"
cp "$kwok_dir/kustomize/stage/node/fast/node-initialize.yaml" \
   "$kwok_dir/kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" \
   "$kwok_dir/kustomize/stage/pod/fast/pod-ready.yaml" \
   "$kwok_dir/kustomize/stage/pod/fast/pod-complete.yaml" \
   "$kwok_dir/kustomize/stage/pod/fast/pod-delete.yaml" "$tmp/stages/"
# kwok's CRDs (Exec, Logs, PortForward, ... ) that up.sh installs.
mkdir -p "$tmp/crds"
cp "$kwok_dir"/kustomize/crd/bases/*.yaml "$tmp/crds/"
chmod -R u+w "$tmp/stages" "$tmp/crds"

rm -rf "$dir"
mkdir -p "$dir"
mv "$tmp/bin" "$tmp/stages" "$tmp/crds" "$dir/"
"$dir/bin/kube-apiserver" --version >&2
"$dir/bin/etcd" --version >&2
"$dir/bin/kwok" --version >&2
touch "$dir/.complete"
# Builds of other keys not used for 3 days are removed (a use touches the
# folder; another work tree may still use a recent one).
find "$cache" -mindepth 1 -maxdepth 1 -type d -mtime +2 ! -path "$dir" -exec rm -rf {} + 2>/dev/null || true
echo "build.sh: built in $(( $(date +%s) - start ))s" >&2
echo "$bin"
