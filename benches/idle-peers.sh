#!/usr/bin/env bash
# Memory per idle connection (issue 21 item 5): N handshaken idle peers against `seedbox seed`
# and against libtorrent's high_performance_seed in the same run, then REFUSED connections
# opened and closed one by one against a seed already at --max-peers. Reports the seeds'
# RssAnon (/proc/PID/status) before and after.
# Usage: benches/idle-peers.sh [N] [REFUSED]   (env SEEDBOX=path/to/seedbox; a hard limit of
# open files above N + 100; needs python3-libtorrent)
set -euo pipefail
N=${1:-5000}
REFUSED=${2:-10000}
BIN=${SEEDBOX:-target/release/seedbox}
here=$(cd "$(dirname "$0")" && pwd)
ulimit -n "$(ulimit -Hn)"  # 5,000 idle peers need 5,000+ descriptors per process
dir=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill $p 2>/dev/null || true; done; rm -rf "$dir"' EXIT
head -c 16777216 /dev/urandom > "$dir/data.bin"
rss() { awk '/^RssAnon/ {print $2}' /proc/$1/status; }

# Holds N idle handshaken connections to $1 until its stdin closes; prints the seed's RSS.
measure() {
  local name=$1 pid=$2 addr=$3
  sleep 2
  local before; before=$(rss "$pid")
  mkfifo "$dir/hold.$name"
  /usr/bin/python3 "$here/idle_peers.py" "$addr" "$ih" "$N" < "$dir/hold.$name" > "$dir/client.$name" &
  local client=$!
  exec 9> "$dir/hold.$name"
  for _ in $(seq 600); do grep -q '^ready' "$dir/client.$name" && break; sleep 0.5; done
  sleep 5
  local after; after=$(rss "$pid")
  read -r _ ok failed < "$dir/client.$name"
  echo "$name: $ok handshaken idle peers ($failed failed): RssAnon $before -> $after KiB," \
    "$(( (after - before) * 1024 / (ok > 0 ? ok : 1) )) bytes per peer"
  exec 9>&-
  wait $client || true
}

"$BIN" seed "$dir/data.bin" --no-tracker --listen 127.0.0.1:0 --threads 2 --stats-every 0 \
  --max-peers 100000 > "$dir/out" 2> "$dir/err" &
seed=$!; pids+=($seed)
for _ in $(seq 100); do grep -q '^listening' "$dir/out" && break; sleep 0.2; done
addr=$(awk '/^listening/ {print $2}' "$dir/out")
ih=$("$BIN" show "$dir/data.bin.torrent" | awk '/^info-hash / {print $2}')
measure seedbox $seed "$addr"
kill $seed; wait $seed 2>/dev/null || true

/usr/bin/python3 "$here/../tests/support/lt_peer.py" --mode seed --high-performance-seed \
  --plaintext --stay --torrent "$dir/data.bin.torrent" --save "$dir" > "$dir/lt.out" 2>&1 &
lt=$!; pids+=($lt)
for _ in $(seq 100); do grep -q '^LISTEN' "$dir/lt.out" && break; sleep 0.2; done
port=$(awk '/^LISTEN/ {print $2; exit}' "$dir/lt.out")
measure libtorrent-high_performance_seed $lt "127.0.0.1:$port"
kill $lt; wait $lt 2>/dev/null || true

# Past --max-peers: 100 peers fill the seed, then REFUSED more come and go one at a time.
"$BIN" seed "$dir/data.bin" --no-tracker --listen 127.0.0.1:0 --threads 2 --stats-every 0 \
  --max-peers 100 > "$dir/out2" 2> "$dir/err2" &
seed=$!; pids+=($seed)
for _ in $(seq 100); do grep -q '^listening' "$dir/out2" && break; sleep 0.2; done
addr=$(awk '/^listening/ {print $2}' "$dir/out2")
mkfifo "$dir/hold.full"
/usr/bin/python3 "$here/idle_peers.py" "$addr" "$ih" 100 < "$dir/hold.full" > "$dir/client.full" &
exec 8> "$dir/hold.full"
for _ in $(seq 100); do grep -q '^ready' "$dir/client.full" && break; sleep 0.2; done
sleep 2
before=$(rss $seed)
/usr/bin/python3 "$here/idle_peers.py" "$addr" "$ih" "$REFUSED" --churn > "$dir/churn"
sleep 2
after=$(rss $seed)
read -r _ ok failed < "$dir/churn"
echo "refused: seed at --max-peers 100 (holding $(awk '{print $2}' "$dir/client.full")): $REFUSED" \
  "more connections ($ok answered, $failed refused): RssAnon $before -> $after KiB"
exec 8>&-
