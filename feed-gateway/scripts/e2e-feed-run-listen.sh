#!/usr/bin/env bash
# End-to-end check over loopback UDP, by hand (needs `liqd run`, python3):
#   liqd feed SCENARIO → liqd run → liqd listen --no-source
# and compares what listen printed with SCENARIO's .expected.jsonl (each
# output's seq + 1: the daemon journals its configuration's P first).
#
# usage: feed-gateway/scripts/e2e-feed-run-listen.sh [LIQD_BINARY] [EXTRA FEED ARGS…]
#   e.g. … target/debug/liqd --drop-every 3   (losses recovered by re-request;
#   recovered events arrive later, so outputs may then legitimately differ)
set -u
BIN=${1:-target/debug/liqd}
shift || true
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
pass=0
fail=0
for scenario in "$ROOT"/testdata/scenarios/*.jsonl; do
  case $scenario in *.expected.jsonl | *tier_count_rejection*) continue ;; esac
  rm -rf "$WORK/data"
  cat >"$WORK/c.toml" <<TOML
[streams.md]
listen = "127.0.0.1:41001"
retransmit = "127.0.0.1:41100"
[streams.orders]
listen = "127.0.0.1:41002"
retransmit = "127.0.0.1:41100"
[streams.admin]
listen = "127.0.0.1:41003"
retransmit = "127.0.0.1:41100"
[outbound]
session = "LIQDE2E"
bind = "127.0.0.1:0"
destinations = ["127.0.0.1:41200"]
retransmit_listen = "127.0.0.1:41201"
status_interval_ms = 200
[journal]
dir = "$WORK/data"
[threads]
engine_idle = "sleep:50"
gateway_idle = "sleep:100"
[metrics]
status_log_interval_ms = 0
TOML
  "$BIN" listen --bind 127.0.0.1:41200 --retrans 127.0.0.1:41201 --no-source \
    --idle-exit-ms 3000 >"$WORK/listen.out" 2>"$WORK/listen.err" &
  listen=$!
  "$BIN" run --config "$WORK/c.toml" >"$WORK/run.out" 2>"$WORK/run.err" &
  run=$!
  sleep 2
  "$BIN" feed --input "$scenario" --md 127.0.0.1:41001 --orders 127.0.0.1:41002 \
    --admin 127.0.0.1:41003 --retrans-bind 127.0.0.1:41100 --rate 2000 \
    --linger-ms 500 "$@" 2>"$WORK/feed.err"
  sleep 1
  kill -INT $run
  wait $run
  wait $listen
  if python3 - "${scenario%.jsonl}.expected.jsonl" "$WORK/listen.out" <<'PY'; then
import json, sys
expected = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
got = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
for e in expected:
    e["seq"] += 1
sys.exit(0 if expected == got else 1)
PY
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "DIFF: $(basename "$scenario")"
  fi
done
echo "$pass equal, $fail different"
[ "$fail" -eq 0 ]
