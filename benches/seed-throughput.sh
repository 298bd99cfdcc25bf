#!/usr/bin/env bash
# Side-by-side seed throughput: seedbox seed against libtorrent 2.0.8's high_performance_seed,
# driven by the same `seedbox bench load`, with the iperf3 loopback ceiling measured in every
# round beside them (the machine is shared and noisy: a ceiling from another minute is not one).
# seedbox is loaded twice: with the load generator discarding payloads in the kernel
# (MSG_TRUNC, the default) and with `--copy-payload` (it reads them, as a real client would).
# Usage: benches/seed-throughput.sh   (env: SIZE_GIB=4 CONNS="1 8 64 512" DURATION=10 ROUNDS=2)
# Writes bench-results/seed-throughput.md with the table, commands, date, nproc, kernel, raw JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_GIB=${SIZE_GIB:-4}
CONNS=${CONNS:-"1 8 64 512"}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-2}
QUEUE=${QUEUE:-64}
DATA=${BENCH_DATA:-bench-data}
OUT=${OUT:-bench-results/seed-throughput.md}
PY=/usr/bin/python3
for b in iperf3; do command -v $b >/dev/null || { echo "needs $b: apt-get install -y $b" >&2; exit 1; }; done
$PY -c 'import libtorrent' || { echo "needs python3-libtorrent" >&2; exit 1; }
cargo build --release --quiet
SB=$PWD/target/release/seedbox
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

# 1. Loopback ceiling: one iperf3 stream for DURATION seconds, once per round (see run_iperf).
iperf3 -s -p 5299 >/dev/null 2>&1 & PIDS+=($!)
sleep 0.5
# 2. The two seeds, both running, each on its own port.
"$SB" seed "$TORRENT" --data "$DATA/seed" --listen 127.0.0.1:6881 --unchoke-slots unlimited \
  --no-tracker > "$TMP/seedbox.log" 2>&1 & SB_PID=$!; PIDS+=($SB_PID)
$PY tests/support/lt_peer.py --torrent "$TORRENT" --save "$DATA/seed" --mode seed \
  --high-performance-seed --port 6882 > "$TMP/lt.log" 2>&1 & LT_PID=$!; PIDS+=($LT_PID)
for i in $(seq 1 100); do grep -q LISTEN "$TMP/lt.log" && break; sleep 0.2; done
# seedbox checks the data before serving and prints `listening` when it serves.
for i in $(seq 1 300); do grep -q '^listening' "$TMP/seedbox.log" && break; sleep 0.2; done
grep -q '^listening' "$TMP/seedbox.log" || { echo "seedbox seed did not start: $(cat "$TMP/seedbox.log")" >&2; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)
RAW="$TMP/raw.jsonl"; : > "$RAW"
run_iperf() { # conns (the row it stands beside)
  iperf3 -c 127.0.0.1 -p 5299 -t "$DURATION" -J > "$TMP/iperf.json" || true
  $PY - "$1" "$TMP/iperf.json" >> "$RAW" <<'PYEOF'
import json, sys
try:
    g = json.load(open(sys.argv[2]))['end']['sum_received']['bits_per_second'] / 1e9
except Exception:
    g = 0
print(json.dumps({"seed": "iperf3", "conns": int(sys.argv[1]), "gbit": g}))
PYEOF
}
run_one() { # seed-name pid port conns [load flags]
  local before after
  before=$(cpu_ticks "$2")
  "$SB" bench load "127.0.0.1:$3" --torrent "$TORRENT" --conns "$4" --duration "$DURATION" \
    --warmup "$WARMUP" --queue "$QUEUE" --source-ips 127.0.0.2-127.0.0.250 --json ${5:-} > "$TMP/one.json" || true
  after=$(cpu_ticks "$2")
  $PY - "$1" "$4" "$before" "$after" "$TICK" "$2" "$TMP/one.json" >> "$RAW" <<'PYEOF'
import json, sys
name, conns, before, after, tick, pid, path = sys.argv[1:]
try:
    r = json.load(open(path))
except Exception:
    r = {"gbit_per_s": 0, "payload_bytes": 0, "errors": -1, "connected": 0, "latency_us": {}}
cpu = (int(after) - int(before)) / int(tick)
gib = r["payload_bytes"] / 2**30
rss = anon = 0
for line in open(f"/proc/{pid}/status"):
    if line.startswith("VmHWM"):
        rss = int(line.split()[1]) // 1024
    if line.startswith("RssAnon"):
        anon = int(line.split()[1]) // 1024
print(json.dumps({"seed": name, "conns": int(conns), "gbit": r["gbit_per_s"], "cpu_s": cpu,
                  "cpu_s_per_gib": cpu / gib if gib else None, "rss_mib": rss, "anon_mib": anon,
                  "p99_us": r["latency_us"].get("p99"), "errors": r["errors"],
                  "connected": r["connected"]}))
PYEOF
}
for c in $CONNS; do
  for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then
      run_iperf "$c"; run_one seedbox $SB_PID 6881 "$c"; run_one libtorrent $LT_PID 6882 "$c"
      run_one seedbox-copy $SB_PID 6881 "$c" --copy-payload
    else
      run_one seedbox-copy $SB_PID 6881 "$c" --copy-payload
      run_one libtorrent $LT_PID 6882 "$c"; run_one seedbox $SB_PID 6881 "$c"; run_iperf "$c"
    fi
  done
done

$PY - "$RAW" > "$TMP/table.md" <<'PYEOF'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| conns | iperf3 Gbit/s | seedbox Gbit/s | libtorrent Gbit/s | ratio | seedbox / iperf3 | seedbox, client copies, Gbit/s | its / iperf3 | seedbox CPU s/GiB | libtorrent CPU s/GiB | CPU ratio | seedbox peak RSS MiB | libtorrent peak RSS MiB | seedbox anon MiB | libtorrent anon MiB |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
def med(seed, c, k):
    v = [r[k] for r in rows if r["seed"] == seed and r["conns"] == c and r.get(k) is not None]
    return statistics.median(v) if v else float("nan")
for c in sorted({r["conns"] for r in rows}):
    ceil = med("iperf3", c, "gbit")
    s, l, k = med("seedbox", c, "gbit"), med("libtorrent", c, "gbit"), med("seedbox-copy", c, "gbit")
    sc, lc = med("seedbox", c, "cpu_s_per_gib"), med("libtorrent", c, "cpu_s_per_gib")
    print(f"| {c} | {ceil:.2f} | {s:.2f} | {l:.2f} | {s/l if l else float('nan'):.2f} | {s/ceil if ceil else float('nan'):.2f} | {k:.2f} | {k/ceil if ceil else float('nan'):.2f} | {sc:.3f} | {lc:.3f} | {sc/lc if lc else float('nan'):.2f} | {med('seedbox', c, 'rss_mib'):.0f} | {med('libtorrent', c, 'rss_mib'):.0f} | {med('seedbox', c, 'anon_mib'):.0f} | {med('libtorrent', c, 'anon_mib'):.0f} |")
import os
if 64 in {r["conns"] for r in rows}:
    print()
    print(f"Capacity figure for `seedbox plan`: per core: {med('seedbox', 64, 'gbit') / os.cpu_count():.2f} Gbit/s "
          f"(seedbox at 64 connections over nproc cores, the load generator sharing them).")
PYEOF
{
  echo "# Seed throughput: seedbox seed vs libtorrent high_performance_seed"
  echo
  echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); nproc: $(nproc); kernel: $(uname -r); load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "Command: \`SIZE_GIB=$SIZE_GIB CONNS=\"$CONNS\" DURATION=$DURATION ROUNDS=$ROUNDS benches/seed-throughput.sh\`"
  echo
  echo "- Data: one ${SIZE_GIB} GiB file of random bytes, page cache warm; torrent by \`seedbox create\` (auto piece length)."
  echo "- Loopback ceiling: \`iperf3 -c 127.0.0.1 -t $DURATION\` (1 stream), once per round beside the seeds; the table gives its median per row."
  echo "- seedbox: \`seedbox seed T --data DIR --listen 127.0.0.1:6881 --unchoke-slots unlimited --no-tracker\`."
  echo "- libtorrent 2.0.8: \`tests/support/lt_peer.py --mode seed --high-performance-seed\` (uTP off, multiple connections per IP allowed)."
  echo "- Load: \`seedbox bench load 127.0.0.1:PORT --torrent T --conns N --duration $DURATION --warmup $WARMUP --queue $QUEUE --source-ips 127.0.0.2-127.0.0.250 --json\`;"
  echo "  the load generator runs on the same 2 cores as the seed and discards payloads in the kernel (MSG_TRUNC); \"client copies\" is the same load with \`--copy-payload\` (it reads them into memory, as iperf3's receiver and a real client do). Rounds alternate the order; medians of $ROUNDS rounds."
  echo "- CPU seconds per GiB: the seed process's utime+stime from /proc over the run, divided by GiB served. Peak RSS: VmHWM of the seed process, which counts the file's pages it has mapped or read (both seeds touch the whole file); anon: RssAnon after the run, the process's own memory."
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
