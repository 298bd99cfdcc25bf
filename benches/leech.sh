#!/usr/bin/env bash
# seedbox get against a libtorrent leecher, both downloading the same torrent from one
# libtorrent 2.0 seed (high_performance_seed, uTP off) on loopback, alternating runs.
# Usage: benches/leech.sh          (SIZE_GIB=1 RUNS=3 by default)
#        SEEDBOX=path/to/seedbox SEEDBOX_BEFORE=path/to/older/seedbox benches/leech.sh
#        (SEEDBOX: the binary to measure instead of building this checkout; SEEDBOX_BEFORE: a
#        second seedbox binary, e.g. an older commit's, run in the same rotation as "before")
# Writes bench-results/leech.md (table, commands, date, nproc, kernel, raw timings).
# Each run is timed as a whole process, start to exit, fresh save folder: seedbox get --linger 0
# exits once every piece is verified and flushed (fdatasync); the libtorrent leecher exits when
# libtorrent reports the torrent finished (its cache may still be writing back).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_GIB=${SIZE_GIB:-1}
RUNS=${RUNS:-3}
DATA=${BENCH_DATA:-bench-data}
OUT=${OUT:-bench-results/leech.md}
PY=/usr/bin/python3
$PY -c 'import libtorrent' 2>/dev/null || { echo "needs python3-libtorrent: apt-get install -y python3-libtorrent" >&2; exit 1; }
if [ -n "${SEEDBOX:-}" ]; then SB=$(realpath "$SEEDBOX"); else cargo build --release --quiet; SB=$PWD/target/release/seedbox; fi
BEFORE=${SEEDBOX_BEFORE:+$(realpath "$SEEDBOX_BEFORE")}
LT=$PWD/tests/support/lt_peer.py
mkdir -p "$DATA/leech-src"
FILE="$DATA/leech-src/leech-${SIZE_GIB}g.bin"
if [ ! -f "$FILE" ] || [ "$(stat -c %s "$FILE")" -ne $((SIZE_GIB << 30)) ]; then
  echo "generating $FILE" >&2
  head -c $((SIZE_GIB << 30)) /dev/urandom > "$FILE"
fi
TMP=$(mktemp -d "$(realpath "$DATA")/leech.XXXX")
SEED_PID=""
cleanup() { [ -n "$SEED_PID" ] && kill "$SEED_PID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
"$SB" create "$FILE" -o "$TMP/t.torrent" -l 1M --no-date -f -q
cat "$FILE" > /dev/null   # the seed reads from a warm page cache
$PY "$LT" --torrent "$TMP/t.torrent" --save "$DATA/leech-src" --mode seed --high-performance-seed --timeout 86400 > "$TMP/seed.log" 2>&1 &
SEED_PID=$!
for _ in $(seq 1 100); do grep -q '^LISTEN' "$TMP/seed.log" && break; sleep 0.2; done
PORT=$(awk '/^LISTEN/ {print $2; exit}' "$TMP/seed.log")
[ -n "$PORT" ] || { echo "libtorrent seed did not start: $(cat "$TMP/seed.log")" >&2; exit 1; }
RAW="$TMP/raw.txt"; : > "$RAW"

secs() { local s e; s=$(date +%s.%N); "$@" > "$TMP/last.log" 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }
run_seedbox() {
  local bin=${1:-$SB}
  rm -rf "$TMP/sb"; sync
  secs "$bin" get "$TMP/t.torrent" -o "$TMP/sb" --peer "127.0.0.1:$PORT" --no-tracker --linger 0 --quiet
  cmp -s "$FILE" "$TMP/sb/$(basename "$FILE")" || { echo "seedbox result differs" >&2; exit 1; }
}
run_libtorrent() {
  rm -rf "$TMP/lt"; mkdir -p "$TMP/lt"; sync
  secs $PY "$LT" --torrent "$TMP/t.torrent" --save "$TMP/lt" --mode leech --connect "127.0.0.1:$PORT"
  cmp -s "$FILE" "$TMP/lt/$(basename "$FILE")" || { echo "libtorrent result differs" >&2; exit 1; }
}
run_before() { [ -z "$BEFORE" ] || echo "before $(run_seedbox "$BEFORE")" >> "$RAW"; }
for r in $(seq 1 "$RUNS"); do
  if [ $((r % 2)) -eq 1 ]; then
    echo "seedbox $(run_seedbox)" >> "$RAW"; run_before; echo "libtorrent $(run_libtorrent)" >> "$RAW"
  else
    echo "libtorrent $(run_libtorrent)" >> "$RAW"; run_before; echo "seedbox $(run_seedbox)" >> "$RAW"
  fi
done
median() { grep "^$1 " "$RAW" | awk '{print $2}' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
SB_S=$(median seedbox); LT_S=$(median libtorrent)
BYTES=$((SIZE_GIB << 30))
{
  echo "# seedbox get vs a libtorrent leecher"
  echo
  echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); nproc: $(nproc); kernel: $(uname -r); load average at start: ${LOAD_AT_START:-$(cut -d' ' -f1-3 /proc/loadavg)}"
  echo
  echo "Command: \`SIZE_GIB=$SIZE_GIB RUNS=$RUNS benches/leech.sh\` — one libtorrent $($PY -c 'import libtorrent; print(libtorrent.__version__)')"
  echo "seed (\`high_performance_seed()\`, uTP off) of a ${SIZE_GIB} GiB file of random bytes (1 MiB pieces) on"
  echo "loopback; each leecher downloads the whole file into a fresh folder, $RUNS alternating runs,"
  echo "medians of whole-process wall time. Both results compared byte for byte with the source."
  echo
  echo "- seedbox: \`seedbox get T -o DIR --peer 127.0.0.1:PORT --no-tracker --linger 0 --quiet\` (exits after fdatasync)"
  echo "- libtorrent: \`tests/support/lt_peer.py --torrent T --save DIR --mode leech --connect 127.0.0.1:PORT\` (exits when finished)"
  echo
  echo "| leecher | median s | MB/s | speed relative to libtorrent |"
  echo "|---|---|---|---|"
  echo "| seedbox get | $SB_S | $(echo "scale=1; $BYTES / $SB_S / 1000000" | bc) | $(echo "scale=2; $LT_S / $SB_S" | bc) |"
  if [ -n "$BEFORE" ]; then B_S=$(median before)
    echo "| seedbox get, before (\`$SEEDBOX_BEFORE\`) | $B_S | $(echo "scale=1; $BYTES / $B_S / 1000000" | bc) | $(echo "scale=2; $LT_S / $B_S" | bc) |"
  fi
  echo "| libtorrent | $LT_S | $(echo "scale=1; $BYTES / $LT_S / 1000000" | bc) | 1.00 |"
  echo
  echo "Raw timings (seconds, in run order):"
  echo
  echo '```'
  cat "$RAW"
  echo '```'
} > "$OUT"
cat "$OUT"
