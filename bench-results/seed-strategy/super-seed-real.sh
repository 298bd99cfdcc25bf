#!/usr/bin/env bash
# Super-seed against a normal seed on a real swarm of `seedbox get` processes (issue 18):
# origin bytes per completed peer, and the mean and p95 download time.
#
# One run: `seedbox seed FILE` (embedded tracker on loopback, --max-upload-rate ORIGIN_RATE,
# 2 threads, default unchoke slots), then PEERS `seedbox get` processes started STAGGER
# seconds apart, finding each other through the tracker, each uploading at most PEER_RATE and
# leaving LINGER after completion (default 0: at once). The origin's payload is what the getters received (good
# plus wasted) minus what they sent each other; the seed's own block count is printed beside it.
# Download time is each getter's `seconds_to_complete` (from its start). Modes alternate
# (normal, super; then super, normal; ...) on the shared, noisy 2-core machine.
#
# Usage: bench-results/seed-strategy/super-seed-real.sh
#   env: SEEDBOX (binary; default $CARGO_TARGET_DIR/release/seedbox), SIZE_MIB=8, PEERS=12,
#        ORIGIN_RATE=2MB/s, PEER_RATE=2MB/s, STAGGER=0.5, LINGER=0 (get --linger), ROUNDS=3
# Prints one JSON line per run, then a summary table (medians over the rounds).
set -euo pipefail
cd "$(dirname "$0")/../.."
SB=${SEEDBOX:-${CARGO_TARGET_DIR:-$PWD/target}/release/seedbox}
SIZE_MIB=${SIZE_MIB:-8}
PEERS=${PEERS:-12}
ORIGIN_RATE=${ORIGIN_RATE:-2MB/s}
PEER_RATE=${PEER_RATE:-2MB/s}
STAGGER=${STAGGER:-0.5}
LINGER=${LINGER:-0}
ROUNDS=${ROUNDS:-3}
WORK=$(mktemp -d)
SEED_PID=
cleanup() {
  [ -n "$SEED_PID" ] && kill "$SEED_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
head -c $((SIZE_MIB << 20)) /dev/urandom > "$WORK/release.bin"
echo "# $(date -u +%FT%TZ) $(uname -r) nproc $(nproc) size ${SIZE_MIB} MiB peers $PEERS origin $ORIGIN_RATE peer $PEER_RATE stagger $STAGGER s linger $LINGER rounds $ROUNDS"

one_run() {
  local mode=$1 run=$WORK/run-$2-$1
  mkdir -p "$run"
  cp "$WORK/release.bin" "$run/"
  local extra=()
  [ "$mode" = super ] && extra=(--super-seed)
  (cd "$run" && exec "$SB" seed release.bin "${extra[@]}" --listen 127.0.0.1:0 \
    --tracker-listen "127.0.0.1:0" --max-upload-rate "$ORIGIN_RATE" --threads 2 \
    --stats-every 0 >seed.out 2>seed.err) &
  SEED_PID=$!
  for _ in $(seq 100); do grep -q '^listening' "$run/seed.out" 2>/dev/null && break; sleep 0.1; done
  local pids=()
  for i in $(seq "$PEERS"); do
    "$SB" get "$run/release.bin.torrent" -o "$run/get$i" --listen 127.0.0.1:0 --linger "$LINGER" \
      --max-upload-rate "$PEER_RATE" --json -q >"$run/get$i.json" 2>"$run/get$i.err" &
    pids+=($!)
    sleep "$STAGGER"
  done
  local failed=0
  for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
  kill -TERM "$SEED_PID"
  wait "$SEED_PID" || true
  SEED_PID=
  /usr/bin/python3 - "$run" "$mode" "$PEERS" "$failed" "$((SIZE_MIB << 20))" <<'EOF'
import glob, json, re, sys
run, mode, peers, failed, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
down = up = 0
times = []
for f in sorted(glob.glob(run + "/get*.json")):
    try:
        j = json.load(open(f))
    except ValueError:
        continue
    down += j["downloaded"] + j["wasted"]
    up += j["uploaded"]
    if j["complete"]:
        times.append(j["seconds_to_complete"])
blocks = None
for line in open(run + "/seed.err"):
    m = re.search(r"sent (\d+) blocks", line)
    if m:
        blocks = int(m.group(1))
times.sort()
done = len(times)
p95 = times[max(0, -(-95 * done // 100) - 1)] if done else None
print(json.dumps({
    "mode": mode, "completed": done, "peers": peers, "failed": failed,
    "origin_bytes": down - up, "origin_files": round((down - up) / size, 3),
    "origin_bytes_per_peer": (down - up) // max(done, 1),
    "seed_blocks_sent": blocks,
    "mean_s": round(sum(times) / done, 2) if done else None,
    "p95_s": round(p95, 2) if done else None,
    "times_s": [round(t, 2) for t in times],
}), flush=True)
EOF
}

for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then order="normal super"; else order="super normal"; fi
  for mode in $order; do one_run "$mode" "$r"; done
done | tee "$WORK/runs.jsonl"

/usr/bin/python3 - "$WORK/runs.jsonl" <<'EOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print()
print("| mode | runs | completed | origin / file (median) | origin MB per completed peer (median) | mean s (median) | p95 s (median) |")
print("|---|---:|---:|---:|---:|---:|---:|")
med = {}
for mode in ("normal", "super"):
    rs = [r for r in runs if r["mode"] == mode]
    m = lambda k: statistics.median(r[k] for r in rs)
    med[mode] = {k: m(k) for k in ("origin_files", "origin_bytes_per_peer", "mean_s", "p95_s")}
    print("| %s | %d | %s | %.3f | %.3f | %.2f | %.2f |" % (
        mode, len(rs), "/".join(str(r["completed"]) for r in rs), med[mode]["origin_files"],
        med[mode]["origin_bytes_per_peer"] / 1e6, med[mode]["mean_s"], med[mode]["p95_s"]))
print()
for k in ("origin_bytes_per_peer", "mean_s", "p95_s"):
    print("super / normal %s: %.3f" % (k, med["super"][k] / med["normal"][k]))
EOF
