#!/usr/bin/env bash
# Does the seed's choker fill a big uplink? (issue 18) `seedbox seed --max-upload-rate 400Mbit`
# serving one torrent to 32 libtorrent leechers limited to 20 Mbit/s each, with
# `--unchoke-slots auto` against `--unchoke-slots 4`, alternating rounds.
# Usage: benches/uplink-fill.sh            (ROUNDS=3 LEECHERS=32 RATE=400Mbit PEER_BPS=2500000
#                                          WARMUP=20 DURATION=30 SLOTS="auto 4")
# Writes bench-results/seed-strategy/uplink-fill.txt (raw lines, command, date, load).
# Each leecher knows only the seed (no tracker, no PEX), so all it gets comes from the seed;
# the figure is the seed's /metrics uploaded-bytes rate over a 30 s window after 20 s of
# warm-up, with the leechers' own payload rate beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
LEECHERS=${LEECHERS:-32}
RATE=${RATE:-400Mbit}
PEER_BPS=${PEER_BPS:-2500000}
SIZE_MIB=${SIZE_MIB:-256}
WARMUP=${WARMUP:-20}
DURATION=${DURATION:-30}
SLOTS=${SLOTS:-auto 4}
WORK=${WORK:-/dev/shm/uplink-fill}
OUT=${OUT:-bench-results/seed-strategy/uplink-fill.txt}
SB=${SEEDBOX:-$PWD/target/release/seedbox}
PY=/usr/bin/python3
$PY -c 'import libtorrent' 2>/dev/null || { echo "needs python3-libtorrent" >&2; exit 1; }
[ -x "$SB" ] || cargo build --release --quiet
rm -rf "$WORK"; mkdir -p "$WORK/src"
SEED_PID=
cleanup() { [ -n "$SEED_PID" ] && kill "$SEED_PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
head -c $((SIZE_MIB << 20)) /dev/urandom > "$WORK/src/release.bin"
"$SB" create "$WORK/src/release.bin" -o "$WORK/t.torrent" --no-date -f -q

{
  echo "# benches/uplink-fill.sh ROUNDS=$ROUNDS LEECHERS=$LEECHERS RATE=$RATE PEER_BPS=$PEER_BPS SIZE_MIB=$SIZE_MIB WARMUP=$WARMUP DURATION=$DURATION SLOTS='$SLOTS'"
  echo "# $(date -u +%FT%TZ) $(uname -r) nproc=$(nproc) load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# seedbox $(git rev-parse --short HEAD)"
} | tee "$OUT"
for r in $(seq 1 "$ROUNDS"); do
  for slots in $SLOTS; do
    "$SB" seed "$WORK/t.torrent" --data "$WORK/src" --listen 127.0.0.1:0 --no-tracker \
      --threads 2 --max-upload-rate "$RATE" --unchoke-slots "$slots" --admin 127.0.0.1:0 \
      --stats-every 0 > "$WORK/seed.log" 2>&1 & SEED_PID=$!
    for _ in $(seq 1 300); do grep -q '^admin' "$WORK/seed.log" && break; sleep 0.2; done
    PORT=$(awk '/^listening/ {n=split($2, a, ":"); print a[n]; exit}' "$WORK/seed.log")
    ADMIN=$(awk '/^admin/ {print $2; exit}' "$WORK/seed.log")
    [ -n "$PORT" ] && [ -n "$ADMIN" ] || { echo "seed did not start: $(cat "$WORK/seed.log")" >&2; exit 1; }
    rm -rf "$WORK/dl"; mkdir -p "$WORK/dl"
    line=$($PY benches/uplink_fill.py --torrent "$WORK/t.torrent" --save-root "$WORK/dl" \
      --connect "127.0.0.1:$PORT" --leechers "$LEECHERS" --download-limit "$PEER_BPS" \
      --metrics "${ADMIN%/}/metrics" --warmup "$WARMUP" --duration "$DURATION")
    echo "round=$r slots=$slots load=$(cut -d' ' -f1 /proc/loadavg) $line" | tee -a "$OUT"
    kill "$SEED_PID"; wait "$SEED_PID" 2>/dev/null || true; SEED_PID=
  done
done
rm -rf "$WORK/dl"
