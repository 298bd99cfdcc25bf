#!/usr/bin/env bash
# Super-seed against a normal origin in `seedbox sim`, in the setting of super-seed-real.sh
# (issue 18): 8 MiB in create's pieces for that size (32 KiB), 12 peers arriving exactly
# 0.5 s apart, each uploading 2 MB/s with downloads unlimited (10 Gbit/s), an origin of
# 2 MB/s with the seed's default unchoke slots (auto), links of 1 ms round trip as on
# loopback; peers leave at once (linger 0) or after LINGER2. Ten seeds per mode.
#
# Usage: bench-results/seed-strategy/super-seed-sim.sh
#   env: SEEDBOX (binary; default $CARGO_TARGET_DIR/release/seedbox), SEEDS=10, LINGER2=10s
# Prints one JSON line per run, then a table of medians over the seeds.
set -euo pipefail
cd "$(dirname "$0")/../.."
SB=${SEEDBOX:-${CARGO_TARGET_DIR:-$PWD/target}/release/seedbox}
SEEDS=${SEEDS:-10}
LINGER2=${LINGER2:-10s}
export SEEDBOX_NO_HUGE_PAGES_REEXEC=1
echo "# $(date -u +%FT%TZ) $("$SB" --version 2>/dev/null || echo seedbox) seeds 1..$SEEDS"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for linger in 0s "$LINGER2"; do
  for mode in normal super; do
    extra=()
    [ "$mode" = super ] && extra=(--super-seed)
    for s in $(seq "$SEEDS"); do
      "$SB" sim -q --json --size 8MiB --seed-up 2MB/s --peer-up 2MB/s --peer-down 10Gbit \
        --arrivals "12 every 0.5s" --linger "$linger" --rtt 1ms --rng-seed "$s" "${extra[@]}" \
        >"$WORK/r.json"
      /usr/bin/python3 - "$WORK/r.json" "$mode" "$linger" "$s" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t = r["total"]
print(json.dumps({
    "mode": sys.argv[2], "linger": sys.argv[3], "rng_seed": int(sys.argv[4]),
    "unit": r["unit"], "units": r["units"], "slots": r["origin"]["unchoke_slots"],
    "completed": t["completions"], "peers": t["arrivals"],
    "origin_bytes": t["origin_bytes"],
    "origin_files": round(t["origin_bytes"] / r["config"]["size"], 3),
    "origin_bytes_per_peer": round(r["origin"]["bytes_per_completion"]),
    "mean_s": round(t["mean_s"], 2), "p95_s": round(t["p95_s"], 2),
    "unchoked_mean": round(r["origin"]["unchoked_mean"], 1),
}), flush=True)
PY
    done
  done
done | tee "$WORK/runs.jsonl"

/usr/bin/python3 - "$WORK/runs.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print()
print("| linger | mode | runs | completed | origin / file | origin MB per completed peer | mean s | p95 s |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
med = {}
for linger in sorted({r["linger"] for r in runs}, key=lambda l: float(l.rstrip("s"))):
    for mode in ("normal", "super"):
        rs = [r for r in runs if r["mode"] == mode and r["linger"] == linger]
        m = lambda k: statistics.median(r[k] for r in rs)
        med[linger, mode] = {k: m(k) for k in ("origin_files", "origin_bytes_per_peer", "mean_s", "p95_s")}
        print("| %s | %s | %d | %d/%d | %.3f | %.3f | %.2f | %.2f |" % (
            linger, mode, len(rs), sum(r["completed"] for r in rs), sum(r["peers"] for r in rs),
            med[linger, mode]["origin_files"], med[linger, mode]["origin_bytes_per_peer"] / 1e6,
            med[linger, mode]["mean_s"], med[linger, mode]["p95_s"]))
print()
for linger in sorted({l for l, _ in med}):
    print("linger %s, super / normal: %s" % (linger, ", ".join(
        "%s %.2f" % (k, med[linger, "super"][k] / med[linger, "normal"][k])
        for k in ("origin_bytes_per_peer", "mean_s", "p95_s"))))
PY
