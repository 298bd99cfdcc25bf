#!/usr/bin/env bash
# Connection waves against one `seedbox seed`: WAVES times, CONNS synthetic leechers connect,
# download for SECS seconds and leave; the seed's RssAnon is read after each wave, then once
# more after gdb calls malloc_trim(0) in it. Bounded growth that malloc_trim hands back is
# allocator retention; growth that keeps climbing wave after wave and survives the trim is a
# leak. Usage: benches/conn-waves.sh [WAVES] [CONNS] [SECS]   (env SEEDBOX=path/to/seedbox;
# extra environment for the seed, e.g. MALLOC_ARENA_MAX=1, is passed through).
set -euo pipefail
WAVES=${1:-10}
CONNS=${2:-3500}
SECS=${3:-3}
BIN=${SEEDBOX:-target/release/seedbox}
dir=$(mktemp -d)
trap 'kill $seed 2>/dev/null || true; rm -rf "$dir"' EXIT
head -c 16777216 /dev/urandom > "$dir/data.bin"
"$BIN" seed "$dir/data.bin" --no-tracker --listen 127.0.0.1:0 --threads 2 --stats-every 0 \
  --max-peers 100000 > "$dir/out" 2> "$dir/err" &
seed=$!
for _ in $(seq 100); do grep -q '^listening' "$dir/out" && break; sleep 0.2; done
addr=$(awk '/^listening/ {print $2}' "$dir/out")
rss() { awk '/^RssAnon/ {print $2}' /proc/$seed/status; }
echo "wave conns_total rss_anon_kib"
echo "0 0 $(rss)"
total=0
for w in $(seq "$WAVES"); do
  "$BIN" bench load "$addr" --torrent "$dir/data.bin.torrent" --conns "$CONNS" --warmup 1 \
    --duration "$SECS" --threads 1 --source-ips 127.0.0.2-127.0.0.250 > /dev/null
  total=$((total + CONNS))
  sleep 1
  echo "$w $total $(rss)"
done
gdb -p $seed -batch -ex 'call (int)malloc_trim(0)' > /dev/null 2>&1 || echo "gdb failed"
echo "after_malloc_trim $total $(rss)"
