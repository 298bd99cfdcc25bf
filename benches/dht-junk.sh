#!/bin/sh
# RSS of `seedbox seed` before and after 100,000 junk DHT packets (random bytes, truncated
# and malformed bencode, get_peers with random info-hashes from one address) and whether its
# DHT still answers a ping. usage: [SEED_ARGS=...] benches/dht-junk.sh [SEEDBOX_BINARY]
# SEED_ARGS: more `seed` flags, e.g. "--dht-port 0" (the DHT on a socket of its own instead
# of the listen port shared with uTP).
set -eu
BIN=$(realpath "${1:-target/release/seedbox}")
DIR=$(mktemp -d)
trap 'kill $SEED 2>/dev/null; rm -rf "$DIR"' EXIT
head -c 1000000 /dev/urandom > "$DIR/x.bin"
(cd "$DIR" && "$BIN" create -q x.bin >/dev/null)
(cd "$DIR" && exec "$BIN" seed x.bin.torrent --listen 127.0.0.1:0 --no-tracker --threads 1 \
    --dht-bootstrap 127.0.0.1:9 ${SEED_ARGS:-} > "$DIR/out" 2>&1) &
SEED=$!
sleep 2
PID=$SEED
ADDR=$(awk '/^dht/{print $3}' "$DIR/out")
rss() { awk '/VmRSS/{print $2}' /proc/$PID/status; }
echo "seedbox pid $PID, dht $ADDR, rss before: $(rss) kB"
/usr/bin/python3 - "$ADDR" <<'PY'
import os, random, socket, sys, time
host, port = sys.argv[1].split(':'); to = (host, int(port))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
s.setblocking(False)
fixed = [b'', b'd', b'de', b'd1:y1:qe', b'd1:ad2:id20:', b'l' * 1000,
         b'd1:rd2:id20:' + b'a' * 20 + b'5:nodes99999999:e1:t4:zzzz1:y1:re',
         b'i-99999999999999999999999e']
def get_peers(i):
    return (b'd1:ad2:id20:' + os.urandom(20) + b'9:info_hash20:' + os.urandom(20) +
            b'e1:q9:get_peers1:t4:' + i.to_bytes(4, 'big') + b'1:y1:qe')
t0 = time.time(); answered = 0
for i in range(100_000):
    k = i % 4
    pkt = fixed[i % len(fixed)] if k == 0 else get_peers(i) if k == 1 else os.urandom(random.randint(1, 1400))
    s.sendto(pkt, to)
    if i % 200 == 0:
        time.sleep(0.002)
    try:
        while True:
            s.recvfrom(4096); answered += 1
    except BlockingIOError:
        pass
print('sent 100000 packets in %.1f s, %d answers' % (time.time() - t0, answered))
s.setblocking(True); s.settimeout(0.5)
ok = False
for _ in range(20):
    s.sendto(b'd1:ad2:id20:' + b'\x07' * 20 + b'e1:q4:ping1:t4:pin11:y1:qe', to)
    try:
        while True:
            d = s.recvfrom(4096)[0]
            if b'1:t4:pin1' in d:
                ok = True; break
    except socket.timeout:
        pass
    if ok: break
print('ping after the flood answered:', ok)
PY
echo "rss after: $(rss) kB"
sleep 5
echo "rss 5 s later: $(rss) kB"
kill $SEED; wait $SEED 2>/dev/null || true
grep -h "KRPC datagrams" "$DIR/out" || echo "no KRPC datagram dropped by the cores' hand-over"
