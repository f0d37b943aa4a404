#!/usr/bin/env bash
# make demo: start a dev agent on a free port, run examples/hello.yml with the
# CLI (live logs, then a summary), stop the agent. Exits with the pipeline's code.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./bin/ciplat
out=$(mktemp)
"$bin" agent -dev -http-addr 127.0.0.1:0 -log-level warn >"$out" 2>&1 &
agent=$!
trap 'kill -INT $agent 2>/dev/null; wait $agent 2>/dev/null || true; rm -f "$out"' EXIT
# Wait for the agent's banner (it prints the HTTP address once it serves).
for _ in $(seq 1 300); do
  addr=$(sed -n 's/^ *HTTP API: //p' "$out")
  [ -n "$addr" ] && break
  kill -0 $agent 2>/dev/null || { cat "$out"; echo "agent exited"; exit 1; }
  sleep 0.1
done
[ -n "$addr" ] || { cat "$out"; echo "agent did not start"; exit 1; }
echo "==> dev agent up at $addr (UI: $addr/ui/)"
export CIPLAT_ADDR=$addr
"$bin" node status
"$bin" pipeline run examples/hello.yml
