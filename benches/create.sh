#!/usr/bin/env bash
# seedbox create against mktorrent on the same file, page cache warm, alternating runs.
# Usage: benches/create.sh            (SIZE_GIB=2 RUNS=5 PIECE=1M by default)
# Writes bench-results/create.md (table, commands, date, nproc, kernel, raw timings).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_GIB=${SIZE_GIB:-2}
RUNS=${RUNS:-5}
DATA=${BENCH_DATA:-bench-data}
OUT=${OUT:-bench-results/create.md}
command -v mktorrent >/dev/null || { echo "needs mktorrent: apt-get install -y mktorrent" >&2; exit 1; }
cargo build --release --quiet
SB=target/release/seedbox
mkdir -p "$DATA"
FILE="$DATA/create-${SIZE_GIB}g.bin"
if [ ! -f "$FILE" ] || [ "$(stat -c %s "$FILE")" -ne $((SIZE_GIB << 30)) ]; then
  echo "generating $FILE" >&2
  head -c $((SIZE_GIB << 30)) /dev/urandom > "$FILE"
fi
cat "$FILE" > /dev/null   # page cache warm
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
RAW="$TMP/raw.txt"; : > "$RAW"

secs() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }
run_seedbox()   { secs "$SB" create "$FILE" -o "$TMP/sb.torrent" -l 1M -t "$1" --no-date -f -q; }
run_mktorrent() { rm -f "$TMP/mk.torrent"; secs mktorrent -t "$1" -l 20 -a http://127.0.0.1:1/announce -o "$TMP/mk.torrent" "$FILE"; }

for threads in 1 2; do
  for r in $(seq 1 "$RUNS"); do
    if [ $((r % 2)) -eq 1 ]; then
      echo "seedbox $threads $(run_seedbox "$threads")" >> "$RAW"
      echo "mktorrent $threads $(run_mktorrent "$threads")" >> "$RAW"
    else
      echo "mktorrent $threads $(run_mktorrent "$threads")" >> "$RAW"
      echo "seedbox $threads $(run_seedbox "$threads")" >> "$RAW"
    fi
  done
done
# Same pieces from both tools (the info-hashes differ only by announce/metadata).
"$SB" show --json "$TMP/sb.torrent" > "$TMP/sb.json"
CEIL1=$("$SB" bench sha1 -t 1 --seconds 3 | awk '{print $(NF-1)}')
CEIL2=$("$SB" bench sha1 -t 2 --seconds 3 | awk '{print $(NF-1)}')

median() { grep "^$1 $2 " "$RAW" | awk '{print $3}' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
BYTES=$((SIZE_GIB << 30))
{
  echo "# seedbox create vs mktorrent"
  echo
  echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); nproc: $(nproc); kernel: $(uname -r); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "Command: \`SIZE_GIB=$SIZE_GIB RUNS=$RUNS benches/create.sh\` — a ${SIZE_GIB} GiB file of random bytes,"
  echo "page cache warm, 1 MiB pieces, $RUNS alternating runs per tool and thread count, medians."
  echo
  echo "- seedbox: \`seedbox create FILE -o OUT -l 1M -t N --no-date -f -q\`"
  echo "- mktorrent 1.1: \`mktorrent -t N -l 20 -a URL -o OUT FILE\`"
  echo "- SHA-1 ceiling (\`seedbox bench sha1 -t N\`, sha1 crate, bytes in memory): 1 thread ${CEIL1} GB/s, 2 threads ${CEIL2} GB/s"
  echo
  echo "| threads | seedbox s | seedbox GB/s | mktorrent s | mktorrent GB/s | seedbox speed / mktorrent | seedbox / SHA-1 ceiling |"
  echo "|---|---|---|---|---|---|---|"
  for threads in 1 2; do
    s=$(median seedbox $threads); m=$(median mktorrent $threads)
    ceil=$([ $threads = 1 ] && echo "$CEIL1" || echo "$CEIL2")
    awk -v t=$threads -v s="$s" -v m="$m" -v b=$BYTES -v c="$ceil" 'BEGIN {
      printf "| %d | %.3f | %.2f | %.3f | %.2f | %.2f | %.2f |\n", t, s, b/s/1e9, m, b/m/1e9, m/s, (b/s/1e9)/c }'
  done
  echo
  echo "Raw timings (tool, threads, seconds):"
  echo
  echo '```'
  cat "$RAW"
  echo '```'
} > "$OUT"
cat "$OUT"
