#!/usr/bin/env bash
# Announces per second over HTTP: `seedbox tracker` against Debian's opentracker under the same
# load, same run, alternating: wrk (keep-alive) with a Lua script that picks a random
# info-hash from a whitelisted pool and a random peer id, port and left for every request.
# Usage: benches/tracker.sh   (env: DURATION=10 ROUNDS=3 CONNS=64 WRK_THREADS=1 HASHES=1000)
# Writes bench-results/tracker.md with the table, commands, date, nproc, kernel, load, raw output.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}
WRK_THREADS=${WRK_THREADS:-1}
HASHES=${HASHES:-1000}
OUT=${OUT:-bench-results/tracker.md}
for b in wrk opentracker curl; do command -v $b >/dev/null || { echo "needs $b" >&2; exit 1; }; done
cargo build --release --quiet
SB=$PWD/target/release/seedbox
NPROC=$(nproc)
TMP=$(mktemp -d)
chmod 755 "$TMP"   # opentracker chroots there and drops to nobody
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# The swarm pool: both trackers whitelist exactly these (Debian's opentracker is whitelist-only).
python3 - "$HASHES" "$TMP" <<'PY'
import os, sys
n, tmp = int(sys.argv[1]), sys.argv[2]
hs = [os.urandom(20) for _ in range(n)]
open(f"{tmp}/whitelist.txt", "w").write("".join(h.hex() + "\n" for h in hs))
enc = lambda b: "".join("%%%02X" % x for x in b)
lua = ["local hashes = {"] + ['"%s",' % enc(h) for h in hs] + ["}"]
lua.append(r'''
local counter = 0
function setup(thread) counter = counter + 1; thread:set("id", counter) end
function init(args) math.randomseed(os.time() * 1000 + id) end
local hex = {}
for i = 0, 255 do hex[i] = string.format("%%%02X", i) end
function request()
  local pid = {}
  for i = 1, 20 do pid[i] = hex[math.random(0, 255)] end
  local left = 0
  if math.random() < 0.8 then left = math.random(1, 1000000) end
  local path = "/announce?info_hash=" .. hashes[math.random(#hashes)] ..
    "&peer_id=" .. table.concat(pid) .. "&port=" .. math.random(1025, 65535) ..
    "&uploaded=0&downloaded=0&left=" .. left .. "&compact=1&numwant=50"
  return wrk.format("GET", path)
end
''')
open(f"{tmp}/announce.lua", "w").write("\n".join(lua))
PY

OT_PORT=$(free_port)
SB1_PORT=$(free_port)
SBN_PORT=$(free_port)
opentracker -i 127.0.0.1 -p "$OT_PORT" -P "$OT_PORT" -d "$TMP" -w whitelist.txt >/dev/null 2>&1 & PIDS+=($!)
"$SB" tracker --listen "127.0.0.1:$SB1_PORT" --no-udp --threads 1 --whitelist "$TMP/whitelist.txt" >/dev/null 2>"$TMP/sb1.err" & PIDS+=($!)
"$SB" tracker --listen "127.0.0.1:$SBN_PORT" --no-udp --threads "$NPROC" --whitelist "$TMP/whitelist.txt" >/dev/null 2>"$TMP/sbn.err" & PIDS+=($!)
for p in "$OT_PORT" "$SB1_PORT" "$SBN_PORT"; do
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$p/" && break; sleep 0.1; done
done

FIRST=$(head -1 "$TMP/whitelist.txt" | python3 -c 'import sys;h=bytes.fromhex(sys.stdin.read().strip());print("".join("%%%02X"%x for x in h))')
SAMPLE="/announce?info_hash=$FIRST&peer_id=-SANITY-000000000000&port=7000&uploaded=0&downloaded=0&left=1&compact=1"
RAW="$TMP/raw.txt"
: > "$RAW"
declare -A NAMEPORT=([opentracker]=$OT_PORT [seedbox-1thread]=$SB1_PORT [seedbox-${NPROC}threads]=$SBN_PORT)
ORDER=(opentracker "seedbox-1thread" "seedbox-${NPROC}threads")
for name in "${ORDER[@]}"; do
  reply=$(curl -s "http://127.0.0.1:${NAMEPORT[$name]}$SAMPLE" | head -c 200 | tr -c '[:print:]' '.')
  echo "sanity $name: $reply" >> "$RAW"
  case "$reply" in *failure*|"") echo "$name does not answer announces: $reply" >&2; exit 1;; esac
done

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A RESULTS
MODES=(keepalive close)
WRK_CMD="wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s --latency -s announce.lua [-H 'Connection: close'] http://127.0.0.1:PORT/announce"
for mode in "${MODES[@]}"; do
  hdr=()
  [ "$mode" = close ] && hdr=(-H "Connection: close")
  for round in $(seq "$ROUNDS"); do
    for name in "${ORDER[@]}"; do
      port=${NAMEPORT[$name]}
      out=$(cd "$TMP" && wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" --latency "${hdr[@]}" -s announce.lua "http://127.0.0.1:$port/announce")
      { echo "=== $mode, round $round: $name (port $port) ==="; echo "$out"; echo; } >> "$RAW"
      rps=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
      p50=$(echo "$out" | awk '$1=="50%" {print $2}')
      p99=$(echo "$out" | awk '$1=="99%" {print $2}')
      errs=$(echo "$out" | grep -E "Socket errors|Non-2xx" | tr '\n' ' ' || true)
      RESULTS[$mode.$name]+="$rps "
      RESULTS[$mode.$name.p]+="$p50/$p99 "
      echo "$mode round $round $name: $rps req/s p50 $p50 p99 $p99 $errs" >&2
    done
  done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
mkdir -p "$(dirname "$OUT")"
{
  echo "# Tracker: HTTP announces per second, seedbox tracker vs opentracker"
  echo
  echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'). nproc: $NPROC. Kernel: $(uname -r)."
  echo "Load average (1/5/15 min) before: $LOAD_BEFORE, after: $LOAD_AFTER."
  echo "opentracker: Debian package $(dpkg-query -W -f='${Version}' opentracker 2>/dev/null || echo '?'). seedbox: $(git rev-parse --short HEAD)."
  echo
  echo "Load: wrk with $WRK_THREADS thread(s), $CONNS keep-alive connections, ${DURATION} s per run, $ROUNDS rounds,"
  echo "trackers alternating within each round. Every request announces a random info-hash out of"
  echo "$HASHES (whitelisted on both trackers), a random peer id (so swarms grow during the run: both"
  echo "trackers face the same growth), a random port, left=0 for one in five; compact, numwant=50."
  echo "wrk and the trackers share the same $NPROC cores (wrk itself needs one)."
  echo
  echo "| connections | tracker | req/s per round | median req/s | latency p50/p99 per round |"
  echo "|---|---|---|---|---|"
  for mode in "${MODES[@]}"; do
    for name in "${ORDER[@]}"; do
      echo "| $mode | $name | ${RESULTS[$mode.$name]}| $(echo "${RESULTS[$mode.$name]}" | median) | ${RESULTS[$mode.$name.p]}|"
    done
  done
  echo
  echo "keepalive: wrk reuses connections; opentracker closes every connection after its reply"
  echo "(wrk counts those as read errors and reconnects), seedbox keeps them open. close: every"
  echo "request says \`Connection: close\`, so both trackers pay one TCP connection per announce."
  echo
  echo "## Commands"
  echo
  echo '```sh'
  echo "opentracker -i 127.0.0.1 -p PORT -P PORT -d DIR -w whitelist.txt"
  echo "seedbox tracker --listen 127.0.0.1:PORT --no-udp --threads 1 --whitelist whitelist.txt"
  echo "seedbox tracker --listen 127.0.0.1:PORT --no-udp --threads $NPROC --whitelist whitelist.txt"
  echo "$WRK_CMD"
  echo '```'
  echo
  echo "Rerun: \`benches/tracker.sh\` (env DURATION, ROUNDS, CONNS, WRK_THREADS, HASHES)."
  echo
  echo "## Raw output"
  echo
  echo '```'
  cat "$RAW"
  echo '```'
} > "$OUT"
echo "wrote $OUT" >&2
