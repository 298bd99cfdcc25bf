#!/usr/bin/env bash
# Serving throughput of `seedbox seed --admin` while /metrics (and /api/v1/torrents, as the
# status page polls it) is scraped every second, against the same seed, same run, not scraped.
# Rounds alternate the order (scraped first, then not; then not, then scraped) on a shared,
# noisy 2-core machine; the table gives medians and their ratio.
# Usage: benches/admin-scrape.sh   (env: SIZE_GIB=1 CONNS=64 DURATION=10 ROUNDS=6)
# Writes bench-results/admin-scrape.md with the table, commands, date, nproc, kernel, raw JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_GIB=${SIZE_GIB:-1}
CONNS=${CONNS:-64}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-6}
QUEUE=${QUEUE:-64}
DATA=${BENCH_DATA:-bench-data}
OUT=${OUT:-bench-results/admin-scrape.md}
PY=/usr/bin/python3
command -v curl >/dev/null || { echo "needs curl: apt-get install -y curl" >&2; exit 1; }
cargo build --release --quiet
SB=${CARGO_TARGET_DIR:-$PWD/target}/release/seedbox
mkdir -p "$DATA/seed"
FILE="$DATA/seed/seed-${SIZE_GIB}g.bin"
if [ ! -f "$FILE" ] || [ "$(stat -c %s "$FILE")" -ne $((SIZE_GIB << 30)) ]; then
  echo "generating $FILE" >&2
  head -c $((SIZE_GIB << 30)) /dev/urandom > "$FILE"
fi
TORRENT="$DATA/seed-${SIZE_GIB}g.torrent"
[ -f "$TORRENT" ] || "$SB" create "$FILE" -o "$TORRENT" --no-date -q >/dev/null
cat "$FILE" > /dev/null
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

PORT=6891
ADMIN=127.0.0.1:9391
"$SB" seed "$TORRENT" --data "$DATA/seed" --listen 127.0.0.1:$PORT --unchoke-slots unlimited \
  --no-tracker --admin $ADMIN > "$TMP/seedbox.log" 2>&1 & SB_PID=$!; PIDS+=($SB_PID)
for i in $(seq 1 300); do grep -q '^listening' "$TMP/seedbox.log" && break; sleep 0.2; done
grep -q '^listening' "$TMP/seedbox.log" || { echo "seedbox seed did not start: $(cat "$TMP/seedbox.log")" >&2; exit 1; }
curl -sf "http://$ADMIN/metrics" > /dev/null || { echo "no /metrics on $ADMIN" >&2; exit 1; }

RAW="$TMP/raw.jsonl"; : > "$RAW"
scraper() { # scrapes /metrics and /api/v1/torrents once a second until killed; counts scrapes
  local n=0
  while true; do
    curl -sf "http://$ADMIN/metrics" -o /dev/null && curl -sf "http://$ADMIN/api/v1/torrents" -o /dev/null \
      && n=$((n + 1)) && echo "$n" > "$TMP/scrapes"
    sleep 1
  done
}
run_one() { # mode (scraped|idle)
  local spid=""
  echo 0 > "$TMP/scrapes"
  if [ "$1" = scraped ]; then scraper & spid=$!; PIDS+=($spid); fi
  "$SB" bench load "127.0.0.1:$PORT" --torrent "$TORRENT" --conns "$CONNS" --duration "$DURATION" \
    --warmup "$WARMUP" --queue "$QUEUE" --source-ips 127.0.0.2-127.0.0.250 --json > "$TMP/one.json" || true
  if [ -n "$spid" ]; then kill "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true; fi
  $PY - "$1" "$TMP/one.json" "$(cat "$TMP/scrapes")" >> "$RAW" <<'PYEOF'
import json, sys
mode, path, scrapes = sys.argv[1:]
try:
    r = json.load(open(path))
except Exception:
    r = {"gbit_per_s": 0, "errors": -1, "connected": 0, "latency_us": {}}
print(json.dumps({"mode": mode, "gbit": r["gbit_per_s"], "p99_us": r["latency_us"].get("p99"),
                  "errors": r["errors"], "connected": r["connected"], "scrapes": int(scrapes)}))
PYEOF
}
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then run_one scraped; run_one idle; else run_one idle; run_one scraped; fi
done
curl -sf "http://$ADMIN/metrics" > "$TMP/metrics.txt"

$PY - "$RAW" > "$TMP/table.md" <<'PYEOF'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(mode, k):
    return statistics.median(r[k] for r in rows if r["mode"] == mode)
s, i = med("scraped", "gbit"), med("idle", "gbit")
print("| load | runs | median Gbit/s | median p99 request latency us | scrapes per run (median) |")
print("|---|---|---|---|---|")
for mode in ("idle", "scraped"):
    n = sum(1 for r in rows if r["mode"] == mode)
    print(f"| {mode} | {n} | {med(mode, 'gbit'):.2f} | {med(mode, 'p99_us'):.0f} | {med(mode, 'scrapes'):.0f} |")
print()
print(f"Ratio scraped / not scraped: **{s / i:.3f}**")
pairs = [(rows[k], rows[k + 1]) for k in range(0, len(rows) - 1, 2)]
ratios = [(a if a["mode"] == "scraped" else b)["gbit"] / (b if a["mode"] == "scraped" else a)["gbit"] for a, b in pairs]
print()
print("Per round (scraped / not scraped, back to back): " + ", ".join(f"{x:.3f}" for x in ratios))
PYEOF
{
  echo "# Serving throughput with /metrics scraped every second"
  echo
  echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); nproc: $(nproc); kernel: $(uname -r); load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "Command: \`SIZE_GIB=$SIZE_GIB CONNS=$CONNS DURATION=$DURATION ROUNDS=$ROUNDS benches/admin-scrape.sh\`"
  echo
  echo "- Data: one ${SIZE_GIB} GiB file of random bytes, page cache warm; torrent by \`seedbox create\`."
  echo "- Seed: \`seedbox seed T --data DIR --listen 127.0.0.1:$PORT --unchoke-slots unlimited --no-tracker --admin $ADMIN\`, one process for every run."
  echo "- Load: \`seedbox bench load 127.0.0.1:$PORT --torrent T --conns $CONNS --duration $DURATION --warmup $WARMUP --queue $QUEUE --source-ips 127.0.0.2-127.0.0.250 --json\` (on the same 2 cores)."
  echo "- Scraped: during the run, \`curl http://$ADMIN/metrics\` and \`curl http://$ADMIN/api/v1/torrents\` once a second (a new connection each, as Prometheus and the status page without keep-alive would)."
  echo "- Rounds alternate the order (scraped, idle; idle, scraped; ...); medians of $ROUNDS runs each."
  echo
  cat "$TMP/table.md"
  echo
  echo "Raw results (one line per run):"
  echo
  echo '```'
  cat "$RAW"
  echo '```'
  echo
  echo "The /metrics scrape after the last run:"
  echo
  echo '```'
  cat "$TMP/metrics.txt"
  echo '```'
} > "$OUT"
cat "$OUT"
