#!/usr/bin/env bash
# One libtorrent leecher downloading 1 GiB from `seedbox seed` (default flags) and from a
# libtorrent 2.0 seed (high_performance_seed, uTP off), both seeds running, on loopback,
# alternating runs (issue 3's first throughput figure).
# Usage: benches/lt-leech-from-seed.sh          (SIZE_GIB=1 RUNS=3 by default)
# Writes bench-results/lt-leech-from-seed.md (table, commands, date, nproc, kernel, load, raw
# timings). Each run is the libtorrent leecher process timed start to exit (it exits when
# libtorrent reports the torrent finished), into a fresh save folder, then compared byte for
# byte with the source.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_GIB=${SIZE_GIB:-1}
RUNS=${RUNS:-3}
DATA=${BENCH_DATA:-bench-data}
OUT=${OUT:-bench-results/lt-leech-from-seed.md}
PY=/usr/bin/python3
$PY -c 'import libtorrent' 2>/dev/null || { echo "needs python3-libtorrent: apt-get install -y python3-libtorrent" >&2; exit 1; }
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
cargo build --release --quiet
SB=$PWD/target/release/seedbox
LT=$PWD/tests/support/lt_peer.py
mkdir -p "$DATA/leech-src"
FILE="$DATA/leech-src/leech-${SIZE_GIB}g.bin"
if [ ! -f "$FILE" ] || [ "$(stat -c %s "$FILE")" -ne $((SIZE_GIB << 30)) ]; then
  echo "generating $FILE" >&2
  head -c $((SIZE_GIB << 30)) /dev/urandom > "$FILE"
fi
TMP=$(mktemp -d "$PWD/$DATA/ltleech.XXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT
"$SB" create "$FILE" -o "$TMP/t.torrent" -l 1M --no-date -f -q
cat "$FILE" > /dev/null   # both seeds read from a warm page cache

# The two seeds, both running for the whole benchmark, each on its own port.
"$SB" seed "$TMP/t.torrent" --data "$DATA/leech-src" --listen 127.0.0.1:0 --no-tracker \
  > "$TMP/seedbox.log" 2>&1 & PIDS+=($!)
$PY "$LT" --torrent "$TMP/t.torrent" --save "$DATA/leech-src" --mode seed --high-performance-seed \
  --timeout 86400 > "$TMP/lt-seed.log" 2>&1 & PIDS+=($!)
for _ in $(seq 1 300); do grep -q '^listening' "$TMP/seedbox.log" && break; sleep 0.2; done
SB_PORT=$(awk '/^listening/ {n=split($2, a, ":"); print a[n]; exit}' "$TMP/seedbox.log")
[ -n "$SB_PORT" ] || { echo "seedbox seed did not start: $(cat "$TMP/seedbox.log")" >&2; exit 1; }
for _ in $(seq 1 100); do grep -q '^LISTEN' "$TMP/lt-seed.log" && break; sleep 0.2; done
LT_PORT=$(awk '/^LISTEN/ {print $2; exit}' "$TMP/lt-seed.log")
[ -n "$LT_PORT" ] || { echo "libtorrent seed did not start: $(cat "$TMP/lt-seed.log")" >&2; exit 1; }
RAW="$TMP/raw.txt"; : > "$RAW"

secs() { local s e; s=$(date +%s.%N); "$@" > "$TMP/last.log" 2>&1 || { cat "$TMP/last.log" >&2; exit 1; }; e=$(date +%s.%N); echo "$e - $s" | bc; }
leech_from() { # name port [leecher flags]
  local name=$1 port=$2; shift 2
  rm -rf "$TMP/dl"; mkdir -p "$TMP/dl"; sync
  local t
  t=$(secs $PY "$LT" --torrent "$TMP/t.torrent" --save "$TMP/dl" --mode leech --connect "127.0.0.1:$port" --timeout 600 "$@")
  cmp -s "$FILE" "$TMP/dl/$(basename "$FILE")" || { echo "download from $name differs from the source" >&2; exit 1; }
  echo "$name $t" >> "$RAW"
}
# The leecher with libtorrent's default settings (it first tries an encrypted handshake, which
# seedbox does not speak yet: the connection fails and libtorrent retries in plaintext), then
# with encryption off, which times the transfer alone.
for r in $(seq 1 "$RUNS"); do
  if [ $((r % 2)) -eq 1 ]; then
    leech_from seedbox "$SB_PORT"; leech_from libtorrent "$LT_PORT"
    leech_from seedbox-plaintext "$SB_PORT" --plaintext; leech_from libtorrent-plaintext "$LT_PORT" --plaintext
  else
    leech_from libtorrent "$LT_PORT"; leech_from seedbox "$SB_PORT"
    leech_from libtorrent-plaintext "$LT_PORT" --plaintext; leech_from seedbox-plaintext "$SB_PORT" --plaintext
  fi
done
LOAD_AT_END=$(cut -d' ' -f1-3 /proc/loadavg)
median() { grep "^$1 " "$RAW" | awk '{print $2}' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
SB_S=$(median seedbox); LT_S=$(median libtorrent)
SBP_S=$(median seedbox-plaintext); LTP_S=$(median libtorrent-plaintext)
BYTES=$((SIZE_GIB << 30))
gbit() { echo "scale=2; $BYTES * 8 / $1 / 1000000000" | bc; }
{
  echo "# One libtorrent leecher: from seedbox seed vs from a libtorrent high_performance_seed"
  echo
  echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); nproc: $(nproc); kernel: $(uname -r); load average at start: $LOAD_AT_START, at end: $LOAD_AT_END"
  echo
  echo "Command: \`SIZE_GIB=$SIZE_GIB RUNS=$RUNS benches/lt-leech-from-seed.sh\`"
  echo
  echo "- Data: one ${SIZE_GIB} GiB file of random bytes (1 MiB pieces, \`seedbox create -l 1M\`), page cache warm; loopback."
  echo "- seedbox: \`seedbox seed T --data DIR --listen 127.0.0.1:0 --no-tracker\` (otherwise default flags)."
  echo "- libtorrent $($PY -c 'import libtorrent; print(libtorrent.__version__)'): \`tests/support/lt_peer.py --mode seed --high-performance-seed\` (\`high_performance_seed()\`, uTP off)."
  echo "- Leecher: \`/usr/bin/python3 tests/support/lt_peer.py --torrent T --save DIR --mode leech --connect 127.0.0.1:PORT\`"
  echo "  (libtorrent default settings, uTP off), a fresh save folder each run, timed as a whole process"
  echo "  (start to exit once libtorrent reports the torrent finished), result compared byte for byte."
  echo "- Both seeds run throughout; $RUNS rounds alternate which seed goes first; medians. The leecher, both"
  echo "  seeds and the leecher's disk writes share the same $(nproc) cores."
  echo
  echo "| seed | leecher | median s | Gbit/s | speed relative to libtorrent |"
  echo "|---|---|---|---|---|"
  echo "| seedbox seed | default (encrypted handshake first) | $SB_S | $(gbit "$SB_S") | $(echo "scale=2; $LT_S / $SB_S" | bc) |"
  echo "| libtorrent high_performance_seed | default (encrypted handshake first) | $LT_S | $(gbit "$LT_S") | 1.00 |"
  echo "| seedbox seed | \`--plaintext\` (encryption off) | $SBP_S | $(gbit "$SBP_S") | $(echo "scale=2; $LTP_S / $SBP_S" | bc) |"
  echo "| libtorrent high_performance_seed | \`--plaintext\` (encryption off) | $LTP_S | $(gbit "$LTP_S") | 1.00 |"
  echo
  echo "seedbox does not speak BitTorrent protocol encryption (MSE/PE) yet. libtorrent's default"
  echo "leecher opens each outgoing connection with an encrypted handshake; the seed drops it as a bad"
  echo "handshake (\`pstrlen byte 98\` in its debug log) and libtorrent reconnects in plaintext about"
  echo "a second later. The plaintext rows time the transfer alone."
  echo
  echo "Raw timings (seconds, in run order):"
  echo
  echo '```'
  cat "$RAW"
  echo '```'
} > "$OUT"
cat "$OUT"
