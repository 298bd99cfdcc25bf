#!/bin/sh
# Threads, idle CPU and exit time of `seedbox seed` with N torrents (issue 22 item 2).
# usage: run.sh SEEDBOX N [dead]
#   N tiny files are seeded (each created as `seed PATH` does, announcing to the embedded
#   tracker on 127.0.0.1:PORT). With `dead`, created torrents announce to 127.0.0.3:PORT
#   instead, where a socket listens but never accepts (connections hang until timeouts).
set -eu
BIN=$1; N=$2; MODE=${3:-live}
D=$(mktemp -d); trap 'rm -rf "$D"' EXIT
PORT=$((20000 + $$ % 20000))
i=0; while [ $i -lt $N ]; do printf '%d' $i > "$D/f$i"; i=$((i+1)); done
HOST=127.0.0.1
if [ "$MODE" = dead ]; then
  HOST=127.0.0.3
  /usr/bin/python3 -c "import socket,time;s=socket.socket();s.bind(('127.0.0.3',$PORT));s.listen(65535);time.sleep(3600)" &
  DEAD=$!
fi
cd "$D"
ls | grep '^f' > list
"$BIN" seed --listen 127.0.0.1:0 --threads 2 --stats-every 0 --tracker-listen 127.0.0.1:$PORT --tracker-host $HOST $(cat list) > out 2> err &
PID=$!
while ! grep -q '^listening' out 2>/dev/null; do sleep 0.5; done
echo "N=$N mode=$MODE"
sleep 10
echo "threads: $(awk '/^Threads/{print $2}' /proc/$PID/status)"
t0=$(awk '{print $14+$15}' /proc/$PID/stat); sleep 30; t1=$(awk '{print $14+$15}' /proc/$PID/stat)
TCK=$(getconf CLK_TCK)
echo "idle CPU over 30 s: $(echo "scale=3; 100*($t1-$t0)/$TCK/30" | bc)% of a core"
s=$(date +%s.%N); kill -TERM $PID; wait $PID || true; e=$(date +%s.%N)
echo "exit after SIGTERM: $(echo "$e - $s" | bc) s"
grep -h 'stopped announces' err | sed 's/^.*INFO //' || true
[ "$MODE" = dead ] && kill $DEAD || true
