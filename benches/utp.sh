#!/usr/bin/env bash
# uTP against TCP on loopback, and seedbox's uTP against libtorrent's, side by side in one
# run with alternating rounds (issue 23): benches/utp_bench.py does the transfers.
# Usage: benches/utp.sh        (SIZE_MIB=256 RUNS=3 by default)
# Prints the raw lines (case, seconds, MiB/s, seed CPU s, leecher CPU s, both per GiB, load)
# and leaves them in $OUT_RAW; the table in bench-results/utp.md is written from them.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${SIZE_MIB:-256}
RUNS=${RUNS:-3}
DATA=${BENCH_DATA:-bench-data}
OUT_RAW=${OUT_RAW:-bench-results/utp/raw.txt}
PY=/usr/bin/python3
$PY -c 'import libtorrent' 2>/dev/null || { echo "needs python3-libtorrent: apt-get install -y python3-libtorrent" >&2; exit 1; }
[ -n "${NO_BUILD:-}" ] || cargo build --release --quiet
SB=${CARGO_TARGET_DIR:-$PWD/target}/release/seedbox
mkdir -p "$DATA/utp-src"
FILE="$DATA/utp-src/utp-${SIZE_MIB}m.bin"
if [ ! -f "$FILE" ] || [ "$(stat -c %s "$FILE")" -ne $((SIZE_MIB << 20)) ]; then
  echo "generating $FILE" >&2
  head -c $((SIZE_MIB << 20)) /dev/urandom > "$FILE"
fi
# Downloads go to memory, so the disk's speed is no part of the figures.
TMP=$(mktemp -d /dev/shm/utp-bench.XXXX)
trap 'rm -rf "$TMP"' EXIT
"$SB" create "$FILE" -o "$TMP/t.torrent" -l 1M --no-date -f -q
cat "$FILE" > /dev/null   # both seeds read from a warm page cache
{
  echo "# benches/utp.sh SIZE_MIB=$SIZE_MIB RUNS=$RUNS"
  echo "# date: $(date -u '+%Y-%m-%d %H:%M UTC'); nproc: $(nproc); kernel: $(uname -r); load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$TMP/head.txt"
$PY benches/utp_bench.py "$SB" "$FILE" "$TMP/t.torrent" "$TMP" "$RUNS" "$TMP/raw.txt"
{
  cat "$TMP/head.txt"
  cat "$TMP/raw.txt"
  echo "# load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$OUT_RAW"
cat "$OUT_RAW"
