#!/bin/sh
# usage: seed-ab.sh BIN (in a directory holding data.bin and data.torrent; set AB_DIR)  -> "gbit p99_us seed_cpu_s_per_gib" for one bench load against a seed of BIN
cd "${AB_DIR:-/tmp/ab}"
"$1" seed data.torrent --data "${AB_DIR:-/tmp/ab}" --no-tracker --no-dht --listen 127.0.0.1:0 --threads 1 --stats-every 0 > seed.out 2> seed.err &
P=$!
for i in $(seq 100); do grep -q '^listening' seed.out && break; sleep 0.2; done
ADDR=$(awk '/^listening/ {print $2}' seed.out)
t0=$(awk '{print $14+$15}' /proc/$P/stat)
"${LOADGEN:-$1}" bench load "$ADDR" --torrent data.torrent --conns 64 --duration 8 --warmup 0 --threads 1 --json > r.json 2>/dev/null
t1=$(awk '{print $14+$15}' /proc/$P/stat)
kill $P; wait $P 2>/dev/null
python3 -c "import json; d=json.load(open('r.json')); gib=d['payload_bytes']/2**30; print(round(d['gbit_per_s'],2), d['latency_us']['p99'], round(($t1-$t0)/100/gib,3))"
