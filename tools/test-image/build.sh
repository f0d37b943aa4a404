#!/bin/sh
# build.sh builds the Docker image ciplat/busybox:test (see Dockerfile) from
# the static busybox of Debian's busybox-static. `make test-image` runs it,
# and the Docker driver's tests run it when the image is missing, so
# `go test ./drivers/docker` works alone.
#
# Usage: tools/test-image/build.sh [-f]   (-f: rebuild even if present)
# Env:   IMAGE (default ciplat/busybox:test), BUSYBOX (default /bin/busybox)
set -eu
image=${IMAGE:-ciplat/busybox:test}
busybox=${BUSYBOX:-/bin/busybox}
here=$(cd "$(dirname "$0")" && pwd)

if [ "${1:-}" != "-f" ] && docker image inspect "$image" >/dev/null 2>&1; then
	echo "test-image: $image is present (use -f to rebuild)"
	exit 0
fi
if [ ! -x "$busybox" ]; then
	echo "test-image: $busybox not found: install Debian's busybox-static (apt-get install busybox-static)" >&2
	exit 1
fi
# A dynamically linked busybox would not run FROM scratch.
if ! "$busybox" --help 2>&1 | head -1 | grep -qi busybox; then
	echo "test-image: $busybox does not look like busybox" >&2
	exit 1
fi
if command -v file >/dev/null 2>&1 && file -L "$busybox" | grep -q 'dynamically linked'; then
	echo "test-image: $busybox is dynamically linked; it must be the static one of busybox-static" >&2
	exit 1
fi

ctx=$(mktemp -d "${TMPDIR:-/tmp}/ciplat-test-image.XXXXXX")
trap 'rm -rf "$ctx"' EXIT INT TERM
cp "$here/Dockerfile" "$ctx/Dockerfile"
cp "$busybox" "$ctx/busybox"
chmod 0755 "$ctx/busybox"
# The classic builder: it needs no BuildKit/buildx, which the engine of
# the build machines may lack. It warns that it is deprecated; that is fine.
if ! out=$(DOCKER_BUILDKIT=0 docker build -q -t "$image" "$ctx" 2>&1); then
	printf '%s\n' "$out" >&2
	echo "test-image: docker build of $image failed" >&2
	exit 1
fi
echo "test-image: built $image"
