#!/bin/sh
# CPU and memory of seed's DHT with 1,000 public torrents announced: 1,000 files of 1 KiB
# seeded with --no-tracker, one libtorrent DHT node on loopback as the bootstrap node. Prints,
# every 30 s for 240 s, the seed's VmRSS, the CPU seconds of the `seedbox-dht` thread and of
# the crate's actor thread, and the router's count of announces received.
# usage: benches/dht-1000.sh [SEEDBOX_BINARY]
set -eu
BIN=$(realpath "${1:-target/release/seedbox}")
LT=$(realpath "$(dirname "$0")/../tests/dht_support/lt_dht.py")
DIR=$(mktemp -d)
cleanup() { kill $SEED $ROUTER 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
mkfifo "$DIR/router.in"
sleep 100000 > "$DIR/router.in" & HOLD=$!
/usr/bin/python3 "$LT" node < "$DIR/router.in" > "$DIR/router.out" 2>&1 & ROUTER=$!
mkdir "$DIR/data"
i=0; while [ $i -lt 1000 ]; do head -c 1024 /dev/urandom > "$DIR/data/f$i"; i=$((i+1)); done
sleep 3
RPORT=$(awk '/^DHT/{print $2}' "$DIR/router.out")
(cd "$DIR/data" && exec "$BIN" seed f* --listen 127.0.0.1:0 --no-tracker --threads 1 \
    --dht-bootstrap 127.0.0.1:$RPORT > "$DIR/seed.out" 2>&1) & SEED=$!
ticks=$(getconf CLK_TCK)
cpu() { # CPU seconds of the seed's threads whose name starts with $1
    for t in /proc/$SEED/task/*; do
        if grep -q "^$1" "$t/comm" 2>/dev/null; then
            awk -v k="$ticks" '{printf "%.2f\n", ($14 + $15) / k}' "$t/stat"
        fi
    done | head -1
}
t=0
while [ $t -le 240 ]; do
    echo "t=${t}s rss=$(awk '/VmRSS/{print $2}' /proc/$SEED/status) kB" \
        "seedbox-dht=$(cpu seedbox-dht) s mainline=$(cpu Mainline) s" \
        "announces_at_router=$(grep -c 'incoming dht announce' "$DIR/router.out" || true)"
    sleep 30; t=$((t+30))
done
kill $HOLD
