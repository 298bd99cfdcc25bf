#!/usr/bin/env bash
# seedbox seed with zero-copy sends (--send-zc-threshold) against the same binary's writev
# path, both running, driven by `seedbox bench load`, alternating runs.
# Usage: benches/send-zc.sh   (env: SIZE_GIB=1 CONNS="1 8 64" DURATION=10 ROUNDS=2 THRESHOLD=16384)
# Writes bench-results/send-zc.md with the table, commands, date, nproc, kernel, load, raw JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_GIB=${SIZE_GIB:-1}
CONNS=${CONNS:-"1 8 64"}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-2}
QUEUE=${QUEUE:-64}
THRESHOLD=${THRESHOLD:-16384}
DATA=${BENCH_DATA:-bench-data}
OUT=${OUT:-bench-results/send-zc.md}
PY=/usr/bin/python3
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
cargo build --release --quiet
SB=$PWD/target/release/seedbox
mkdir -p "$DATA/leech-src"
FILE="$DATA/leech-src/leech-${SIZE_GIB}g.bin"
if [ ! -f "$FILE" ] || [ "$(stat -c %s "$FILE")" -ne $((SIZE_GIB << 30)) ]; then
  echo "generating $FILE" >&2
  head -c $((SIZE_GIB << 30)) /dev/urandom > "$FILE"
fi
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT
TORRENT="$TMP/t.torrent"
"$SB" create "$FILE" -o "$TORRENT" --no-date -q >/dev/null
cat "$FILE" > /dev/null

start_seed() { # name port extra-args...
  local name=$1 port=$2; shift 2
  "$SB" seed "$TORRENT" --data "$DATA/leech-src" --listen "127.0.0.1:$port" --unchoke-slots unlimited \
    --no-tracker --stats-every 0 "$@" > "$TMP/$name.log" 2>&1 & PIDS+=($!)
  for _ in $(seq 1 300); do grep -q '^listening' "$TMP/$name.log" && break; sleep 0.2; done
  grep -q '^listening' "$TMP/$name.log" || { echo "$name did not start: $(cat "$TMP/$name.log")" >&2; exit 1; }
}
start_seed writev 6891; WV_PID=${PIDS[-1]}
start_seed zc 6892 --send-zc-threshold "$THRESHOLD"; ZC_PID=${PIDS[-1]}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)
RAW="$TMP/raw.jsonl"; : > "$RAW"
run_one() { # name pid port conns
  local before after
  before=$(cpu_ticks "$2")
  "$SB" bench load "127.0.0.1:$3" --torrent "$TORRENT" --conns "$4" --duration "$DURATION" \
    --warmup "$WARMUP" --queue "$QUEUE" --source-ips 127.0.0.2-127.0.0.250 --json > "$TMP/one.json" || true
  after=$(cpu_ticks "$2")
  $PY - "$1" "$4" "$before" "$after" "$TICK" "$TMP/one.json" >> "$RAW" <<'PYEOF'
import json, sys
name, conns, before, after, tick, path = sys.argv[1:]
try:
    r = json.load(open(path))
except Exception:
    r = {"gbit_per_s": 0, "payload_bytes": 0, "errors": -1, "latency_us": {}}
cpu = (int(after) - int(before)) / int(tick)
gib = r["payload_bytes"] / 2**30
print(json.dumps({"seed": name, "conns": int(conns), "gbit": r["gbit_per_s"], "cpu_s": cpu,
                  "cpu_s_per_gib": cpu / gib if gib else None,
                  "p99_us": r["latency_us"].get("p99"), "errors": r["errors"]}))
PYEOF
}
for c in $CONNS; do
  for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then
      run_one writev $WV_PID 6891 "$c"; run_one zc $ZC_PID 6892 "$c"
    else
      run_one zc $ZC_PID 6892 "$c"; run_one writev $WV_PID 6891 "$c"
    fi
  done
done
LOAD_AT_END=$(cut -d' ' -f1-3 /proc/loadavg)
# The zero-copy seed logs, per core on exit, how many sends the kernel copied anyway.
kill -TERM "$ZC_PID"; for _ in $(seq 1 100); do kill -0 "$ZC_PID" 2>/dev/null || break; sleep 0.1; done
ZC_COUNTS=$(grep -o 'zero-copy sends: .*' "$TMP/zc.log" | sed 's/\x1b\[[0-9;]*m//g' || true)

$PY - "$RAW" > "$TMP/table.md" <<'PYEOF'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| conns | writev Gbit/s | send_zc Gbit/s | ratio zc/writev | writev CPU s/GiB | send_zc CPU s/GiB | CPU ratio |")
print("|---|---|---|---|---|---|---|")
def med(seed, c, k):
    v = [r[k] for r in rows if r["seed"] == seed and r["conns"] == c and r[k] is not None]
    return statistics.median(v) if v else float("nan")
for c in sorted({r["conns"] for r in rows}):
    w, z = med("writev", c, "gbit"), med("zc", c, "gbit")
    wc, zc = med("writev", c, "cpu_s_per_gib"), med("zc", c, "cpu_s_per_gib")
    print(f"| {c} | {w:.2f} | {z:.2f} | {z/w if w else float('nan'):.2f} | {wc:.3f} | {zc:.3f} | {zc/wc if wc else float('nan'):.2f} |")
PYEOF
{
  echo "# Zero-copy sends (SENDMSG_ZC) vs writev in seedbox seed"
  echo
  echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); nproc: $(nproc); kernel: $(uname -r); load average at start: $LOAD_AT_START, at end: $LOAD_AT_END"
  echo
  echo "Command: \`SIZE_GIB=$SIZE_GIB CONNS=\"$CONNS\" DURATION=$DURATION ROUNDS=$ROUNDS THRESHOLD=$THRESHOLD benches/send-zc.sh\`"
  echo
  echo "- Same binary, two processes running side by side: \`seedbox seed T --data DIR --listen 127.0.0.1:PORT --unchoke-slots unlimited --no-tracker\`,"
  echo "  one as is (writev), one with \`--send-zc-threshold $THRESHOLD\` (writes of more than $THRESHOLD bytes, i.e. batches of two blocks or more, go out with SENDMSG_ZC)."
  echo "- Data: one ${SIZE_GIB} GiB file of random bytes, page cache warm; loopback."
  echo "- Load: \`seedbox bench load 127.0.0.1:PORT --torrent T --conns N --duration $DURATION --warmup $WARMUP --queue $QUEUE --source-ips 127.0.0.2-127.0.0.250 --json\`,"
  echo "  on the same $(nproc) cores; rounds alternate which seed goes first; medians of $ROUNDS rounds. CPU s/GiB: the seed's utime+stime over the run per GiB served."
  echo "- On loopback the kernel copies MSG_ZEROCOPY data anyway (Documentation/networking/msg_zerocopy.rst, \"loopback\": data is copied when delivered"
  echo "  to a local socket), so no gain is expected here: the zero-copy seed's own count (IORING_SEND_ZC_REPORT_USAGE) on exit:"
  echo
  echo '```'
  echo "$ZC_COUNTS"
  echo '```'
  echo
  cat "$TMP/table.md"
  echo
  echo "Raw results (one line per run):"
  echo
  echo '```'
  cat "$RAW"
  echo '```'
} > "$OUT"
cat "$OUT"
