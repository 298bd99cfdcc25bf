#!/usr/bin/env bash
# Cost of RC4 (MSE/PE) for the seed, against plaintext peers, in the same run: one
# `seedbox seed --encryption prefer` (it selects rc4 whenever a peer offers it), and
# `seedbox get` downloading the same file ROUNDS times alternately with `--encryption allow`
# (a plain connection: zero-copy sends from the mapping) and `--encryption prefer` (MSE,
# rc4 selected: every batch copied and encrypted). For each download: wall seconds to
# complete, throughput, and the seed's CPU seconds (utime+stime from /proc) per GiB sent.
# Usage: benches/mse.sh [SIZE_MIB] [ROUNDS]   (env SEEDBOX=path/to/seedbox)
set -euo pipefail
SIZE=${1:-1024}
ROUNDS=${2:-3}
BIN=${SEEDBOX:-target/release/seedbox}
dir=$(mktemp -d)
trap 'kill $seed 2>/dev/null || true; rm -rf "$dir"' EXIT
head -c $((SIZE << 20)) /dev/urandom > "$dir/data.bin"
"$BIN" seed "$dir/data.bin" --no-tracker --listen 127.0.0.1:0 --threads 2 --stats-every 0 \
  --encryption prefer > "$dir/out" 2> "$dir/err" &
seed=$!
for _ in $(seq 300); do grep -q '^listening' "$dir/out" && break; sleep 0.2; done
addr=$(awk '/^listening/ {print $2}' "$dir/out")
tick=$(getconf CLK_TCK)
cpu() { awk -v t="$tick" '{print ($14 + $15) / t}' /proc/$seed/stat; }
echo "round method seconds Gbit/s seed_cpu_s seed_cpu_s_per_GiB"
for r in $(seq "$ROUNDS"); do
  for policy in allow prefer; do
    rm -rf "$dir/dl"
    before=$(cpu)
    json=$("$BIN" get "$dir/data.bin.torrent" -o "$dir/dl" --listen 127.0.0.1:0 --no-tracker \
      --peer "$addr" --encryption "$policy" --json -q)
    after=$(cpu)
    secs=$(echo "$json" | awk -F': ' '/"seconds_to_complete"/ {gsub(",", "", $2); print $2}')
    method=$([ "$policy" = allow ] && echo plaintext || echo rc4)
    awk -v r="$r" -v m="$method" -v s="$secs" -v a="$before" -v b="$after" -v mib="$SIZE" \
      'BEGIN { gib = mib / 1024; printf "%d %s %.2f %.2f %.2f %.3f\n", r, m, s, gib * 8.589934592 / s, b - a, (b - a) / gib }'
  done
done
