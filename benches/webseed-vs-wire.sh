#!/usr/bin/env bash
# The web seed's HTTP throughput against the peer wire's, same file, same `seedbox seed`
# process (issue 19's web seed figure): curl fetching the file in 16 MiB `Range` requests
# (libtorrent's web seed request size) from --web-seed, against a libtorrent leecher
# downloading it over the peer wire (plaintext, uTP off). Alternating runs, medians.
# Usage: benches/webseed-vs-wire.sh          (SIZE_MIB=512 RUNS=3 by default)
# Writes bench-results/webseed.md (table, commands, date, nproc, kernel, load, raw timings).
# Every download is compared byte for byte with the source.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${SIZE_MIB:-512}
RUNS=${RUNS:-3}
RANGE_MIB=${RANGE_MIB:-16}
DATA=${BENCH_DATA:-bench-data}
OUT=${OUT:-bench-results/webseed.md}
PY=/usr/bin/python3
$PY -c 'import libtorrent' 2>/dev/null || { echo "needs python3-libtorrent" >&2; exit 1; }
command -v curl >/dev/null || { echo "needs curl" >&2; exit 1; }
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
# SEEDBOX_BIN: a seedbox binary already built (skips the build).
if [ -z "${SEEDBOX_BIN:-}" ]; then cargo build --release --quiet; fi
SB=${SEEDBOX_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/seedbox}
LT=$PWD/tests/support/lt_peer.py
mkdir -p "$DATA/webseed-src"
NAME="webseed-${SIZE_MIB}m.bin"
FILE="$DATA/webseed-src/$NAME"
if [ ! -f "$FILE" ] || [ "$(stat -c %s "$FILE")" -ne $((SIZE_MIB << 20)) ]; then
  head -c $((SIZE_MIB << 20)) /dev/urandom > "$FILE"
fi
TMP=$(mktemp -d "$PWD/$DATA/webseed.XXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT
"$SB" create "$FILE" -o "$TMP/t.torrent" -l 1M --no-date -f -q
cat "$FILE" > /dev/null   # a warm page cache for both
SEED_CMD="seedbox seed T --data DIR --listen 127.0.0.1:0 --no-tracker --web-seed 127.0.0.1:0"
"$SB" seed "$TMP/t.torrent" --data "$DATA/webseed-src" --listen 127.0.0.1:0 --no-tracker \
  --web-seed 127.0.0.1:0 > "$TMP/seed.log" 2>&1 & PIDS+=($!)
for _ in $(seq 1 300); do grep -q '^listening' "$TMP/seed.log" && break; sleep 0.2; done
PORT=$(awk '/^listening/ {n=split($2, a, ":"); print a[n]; exit}' "$TMP/seed.log")
URL=$(awk '/^webseed/ {print $2; exit}' "$TMP/seed.log")
[ -n "$PORT" ] && [ -n "$URL" ] || { echo "seed did not start: $(cat "$TMP/seed.log")" >&2; exit 1; }
RAW="$TMP/raw.txt"; : > "$RAW"
BYTES=$((SIZE_MIB << 20)); STEP=$((RANGE_MIB << 20))

now() { date +%s.%N; }
http_ranges() {
  rm -f "$TMP/http.bin"; sync
  local s e off=0
  s=$(now)
  while [ $off -lt $BYTES ]; do
    local last=$((off + STEP - 1)); [ $last -ge $BYTES ] && last=$((BYTES - 1))
    curl -sSf -r "$off-$last" "${URL}${NAME}" >> "$TMP/http.bin"
    off=$((last + 1))
  done
  e=$(now)
  cmp -s "$FILE" "$TMP/http.bin" || { echo "HTTP download differs" >&2; exit 1; }
  echo "http-ranges $(echo "$e - $s" | bc)" >> "$RAW"
}
wire() {
  rm -rf "$TMP/dl"; mkdir -p "$TMP/dl"; sync
  local s e
  s=$(now)
  $PY "$LT" --torrent "$TMP/t.torrent" --save "$TMP/dl" --mode leech --plaintext \
    --connect "127.0.0.1:$PORT" --timeout 600 > "$TMP/lt.log" 2>&1 || { cat "$TMP/lt.log" >&2; exit 1; }
  e=$(now)
  cmp -s "$FILE" "$TMP/dl/$NAME" || { echo "peer wire download differs" >&2; exit 1; }
  echo "peer-wire $(echo "$e - $s" | bc)" >> "$RAW"
}
for r in $(seq 1 "$RUNS"); do
  if [ $((r % 2)) -eq 1 ]; then http_ranges; wire; else wire; http_ranges; fi
done
LOAD_AT_END=$(cut -d' ' -f1-3 /proc/loadavg)
median() { grep "^$1 " "$RAW" | awk '{print $2}' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
H=$(median http-ranges); W=$(median peer-wire)
gbit() { echo "scale=2; $BYTES * 8 / $1 / 1000000000" | bc; }
{
  echo "# Web seed (HTTP ranges) against the peer wire, same file, same seed process"
  echo
  echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); nproc: $(nproc); kernel: $(uname -r); load average at start: $LOAD_AT_START, at end: $LOAD_AT_END"
  echo
  echo "Command: \`SIZE_MIB=$SIZE_MIB RUNS=$RUNS RANGE_MIB=$RANGE_MIB benches/webseed-vs-wire.sh\`"
  echo
  echo "- Data: one $SIZE_MIB MiB file of random bytes (1 MiB pieces), page cache warm; loopback."
  echo "- Seed: \`$SEED_CMD\` (default flags otherwise), one process serving both."
  echo "- HTTP: \`curl -sSf -r A-B URL\` for each $RANGE_MIB MiB range in turn (a new connection each), appended to one file."
  echo "- Peer wire: \`/usr/bin/python3 tests/support/lt_peer.py --mode leech --plaintext --connect 127.0.0.1:PORT\`"
  echo "  (libtorrent $($PY -c 'import libtorrent; print(libtorrent.__version__)'), uTP off), timed as a whole process, fresh folder each run."
  echo "- Both compared byte for byte with the source; $RUNS rounds alternating which goes first; medians."
  echo "  The clients, the seed and the clients' disk writes share the same $(nproc) cores."
  echo
  echo "| path | median s | Gbit/s | speed relative to the peer wire |"
  echo "|---|---|---|---|"
  echo "| web seed, curl $RANGE_MIB MiB ranges | $H | $(gbit "$H") | $(echo "scale=2; $W / $H" | bc) |"
  echo "| peer wire, libtorrent leecher | $W | $(gbit "$W") | 1.00 |"
  echo
  echo "Reading: the libtorrent leecher's time is its whole process (python and session start, the"
  echo "connection, SHA-1 of every piece, writing to disk), curl's only the transfer and the write."
  echo
  echo "Raw timings (seconds, in run order):"
  echo
  echo '```'
  cat "$RAW"
  echo '```'
} > "$OUT"
cat "$OUT"
