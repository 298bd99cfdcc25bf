#!/bin/sh
# TCP connections opened to an HTTP tracker, and the time until every `started` announce is
# answered, when `seedbox seed` serves N torrents announcing to one tracker (issue 22 item 2:
# keep-alive to the same tracker).
# usage: announce-keepalive.sh SEEDBOX N
#   N tiny files are seeded; their torrents announce to the embedded tracker on
#   127.0.0.1:PORT. connect() calls are counted with strace; announce times come from the
#   seed's "announced" log lines.
set -eu
BIN=$1; N=$2
D=$(mktemp -d); trap 'rm -rf "$D"' EXIT
PORT=$((20000 + $$ % 20000))
i=0; while [ $i -lt $N ]; do printf '%d' $i > "$D/f$i"; i=$((i+1)); done
cd "$D"
ls | grep '^f' > list
s=$(date +%s.%N)
strace -f -qq -e trace=connect -o trace "$BIN" seed --listen 127.0.0.1:0 --threads 2 --stats-every 0 --no-dht \
  --tracker-listen 127.0.0.1:$PORT --tracker-host 127.0.0.1 $(cat list) > out 2> err &
PID=$!
answered() { n=$(cat err 2>/dev/null | grep -c 'announced') || true; echo "${n:-0}"; }
while [ "$(answered)" -lt "$N" ]; do
  sleep 0.2
  if [ $(echo "$(date +%s.%N) - $s > 300" | bc) = 1 ]; then echo "timeout"; break; fi
done
e=$(date +%s.%N)
echo "N=$N"
echo "announces answered: $(answered)"
echo "seconds from start until all answered: $(echo "$e - $s" | bc)"
echo "TCP connects to the tracker port: $(grep -c "sin_port=htons($PORT)" trace || true)"
pkill -TERM -P $PID 2>/dev/null || true; wait $PID 2>/dev/null || true
