#!/usr/bin/env bash
# One knob at a time: seedbox seed under the same `seedbox bench load` (64 connections unless
# the variant says otherwise), each variant run twice, alternating with the baseline.
# Usage: benches/tuning-seed.sh   (env: SIZE_GIB=1 DURATION=8 CONNS=64)
# Writes bench-results/tuning-seed.md (table, commands, date, nproc, kernel, raw JSON lines).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_GIB=${SIZE_GIB:-1}
DURATION=${DURATION:-8}
CONNS=${CONNS:-64}
DATA=${BENCH_DATA:-bench-data}
OUT=${OUT:-bench-results/tuning-seed.md}
cargo build --release --quiet
SB=$PWD/target/release/seedbox
mkdir -p "$DATA/tuning"
FILE="$DATA/tuning/tuning-${SIZE_GIB}g.bin"
if [ ! -f "$FILE" ] || [ "$(stat -c %s "$FILE")" -ne $((SIZE_GIB << 30)) ]; then
  head -c $((SIZE_GIB << 30)) /dev/urandom > "$FILE"
fi
TORRENT="$DATA/tuning-${SIZE_GIB}g.torrent"
[ -f "$TORRENT" ] || "$SB" create "$FILE" -o "$TORRENT" --no-date -q >/dev/null
cat "$FILE" > /dev/null
TMP=$(mktemp -d); SEED_PID=""
trap '[ -n "$SEED_PID" ] && kill $SEED_PID 2>/dev/null; rm -rf "$TMP"' EXIT
RAW="$TMP/raw.jsonl"; : > "$RAW"

# name | seed flags | load flags
VARIANTS=(
  "baseline (2 threads, unlimited slots, reqq 500; load queue 64)||"
  "--threads 1|--threads 1|"
  "--unchoke-slots 4 (default)|--unchoke-slots 4|"
  "--request-queue 16|--request-queue 16|"
  "load --queue 16|--|--queue 16"
  "load --queue 256|--|--queue 256"
  "512 connections|--|--conns 512"
  "--pin-cores|--pin-cores|"
  "--send-buffer 256KiB|--send-buffer 256KiB|"
  "--send-buffer 4MiB|--send-buffer 4MiB|"
  "--notsent-lowat 16KiB|--notsent-lowat 16KiB|"
  "--notsent-lowat 256KiB|--notsent-lowat 256KiB|"
  "--huge-pages|--huge-pages|"
)
run_variant() { # name seedflags loadflags
  local seedflags=$2 loadflags=$3
  [ "$seedflags" = "--" ] && seedflags=""
  local slots="--unchoke-slots unlimited"
  case "$seedflags" in *--unchoke-slots*) slots="";; esac
  # shellcheck disable=SC2086
  "$SB" seed "$TORRENT" --data "$DATA/tuning" --listen 127.0.0.1:0 --no-tracker \
    --stats-every 0 $slots $seedflags > "$TMP/seed.out" 2> "$TMP/seed.err" &
  SEED_PID=$!
  for _ in $(seq 1 300); do grep -q '^listening' "$TMP/seed.out" && break; sleep 0.1; done
  local addr; addr=$(awk '/^listening/ {print $2}' "$TMP/seed.out")
  [ -n "$addr" ] || { echo "seed did not start: $(cat "$TMP/seed.err")" >&2; exit 1; }
  local queue=64 conns=$CONNS extra=()
  # shellcheck disable=SC2206
  local lf=($loadflags)
  local i=0
  while [ $i -lt ${#lf[@]} ]; do
    case "${lf[$i]}" in
      --queue) queue=${lf[$((i+1))]}; i=$((i+2));;
      --conns) conns=${lf[$((i+1))]}; i=$((i+2));;
      *) extra+=("${lf[$i]}"); i=$((i+1));;
    esac
  done
  local before after
  before=$(awk '{print $14 + $15}' "/proc/$SEED_PID/stat")
  "$SB" bench load "$addr" --torrent "$TORRENT" --conns "$conns" --duration "$DURATION" \
    --warmup 2 --queue "$queue" --source-ips 127.0.0.2-127.0.0.250 --json > "$TMP/one.json" || true
  after=$(awk '{print $14 + $15}' "/proc/$SEED_PID/stat")
  # Huge pages backing the seed's mappings (file THP shows as FilePmdMapped).
  local pmd; pmd=$(awk '/^FilePmdMapped/ {print $2}' "/proc/$SEED_PID/smaps_rollup" 2>/dev/null || echo 0)
  kill "$SEED_PID"; wait "$SEED_PID" 2>/dev/null || true; SEED_PID=""
  /usr/bin/python3 - "$1" "$before" "$after" "$(getconf CLK_TCK)" "$TMP/one.json" "${pmd:-0}" >> "$RAW" <<'PY'
import json, sys
name, before, after, tick, path, pmd = sys.argv[1:]
try:
    r = json.load(open(path))
except Exception:
    r = {"gbit_per_s": 0, "payload_bytes": 0, "latency_us": {}, "errors": -1}
cpu = (int(after) - int(before)) / int(tick)
gib = r["payload_bytes"] / 2**30
print(json.dumps({"variant": name, "gbit": r["gbit_per_s"], "cpu_s_per_gib": cpu / gib if gib else None,
                  "p99_us": r["latency_us"].get("p99"), "errors": r["errors"],
                  "queue_capped_to": r.get("queue_capped_to"), "file_pmd_mapped_kib": int(pmd or 0)}))
PY
}
for round in 1 2; do
  for v in "${VARIANTS[@]}"; do
    IFS='|' read -r name seedflags loadflags <<< "$v"
    run_variant "$name" "$seedflags" "$loadflags"
  done
done
{
  echo "# seedbox seed: one knob at a time"
  echo
  echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); nproc: $(nproc); kernel: $(uname -r); load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "Command: \`SIZE_GIB=$SIZE_GIB DURATION=$DURATION CONNS=$CONNS benches/tuning-seed.sh\`. A ${SIZE_GIB} GiB file, page cache warm;"
  echo "each variant is a fresh \`seedbox seed T --listen 127.0.0.1:0 --no-tracker --unchoke-slots unlimited [FLAGS]\`"
  echo "under \`seedbox bench load ADDR --torrent T --conns $CONNS --duration $DURATION --warmup 2 --queue 64 --source-ips 127.0.0.2-127.0.0.250\`"
  echo "(the load generator shares the 2 cores). Two rounds, all variants in turn each round; mean of the two."
  echo "CPU s/GiB: the seed's utime+stime over warm-up and window, divided by the GiB served in the window."
  echo "THP: $(cat /sys/kernel/mm/transparent_hugepage/enabled) (enabled), file_pmd_mapped_kib: FilePmdMapped of the seed's smaps_rollup after the run."
  echo
  /usr/bin/python3 - "$RAW" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
names = list(dict.fromkeys(r["variant"] for r in rows))
base = None
print("| variant | Gbit/s (runs) | mean Gbit/s | vs baseline | CPU s/GiB | p99 latency ms |")
print("|---|---|---|---|---|---|")
for n in names:
    rs = [r for r in rows if r["variant"] == n]
    g = [r["gbit"] for r in rs]
    c = [r["cpu_s_per_gib"] for r in rs if r["cpu_s_per_gib"]]
    p = [r["p99_us"] for r in rs if r["p99_us"]]
    mean = sum(g) / len(g)
    base = base or mean
    print(f"| {n} | {', '.join('%.2f' % x for x in g)} | {mean:.2f} | {mean/base:.2f} | {sum(c)/len(c) if c else float('nan'):.3f} | {sum(p)/len(p)/1000 if p else float('nan'):.1f} |")
PY
  echo
  echo "Raw (one line per run):"
  echo
  echo '```'
  cat "$RAW"
  echo '```'
} > "$OUT"
cat "$OUT"
