#!/usr/bin/env bash
# Restart time of `seedbox seed` for one large release, with and without --state: the time
# from starting the process until a peer receives its first block (handshake, interested,
# unchoke, request, piece), alternating the two modes, ROUNDS rounds each.
# Usage: benches/restart.sh [SIZE_MIB=4096] [ROUNDS=3] [DIR=/dev/shm/seedbox-restart]
set -euo pipefail
size=${1:-4096}
rounds=${2:-3}
dir=${3:-/dev/shm/seedbox-restart}
bin=${SEEDBOX:-target/release/seedbox}
mkdir -p "$dir"
if [ ! -f "$dir/release.bin" ] || [ "$(stat -c %s "$dir/release.bin")" != $((size << 20)) ]; then
    head -c $((size << 20)) /dev/urandom > "$dir/release.bin"
    rm -f "$dir/release.bin.torrent"
fi
[ -f "$dir/release.bin.torrent" ] || "$bin" create -q "$dir/release.bin" -o "$dir/release.bin.torrent"
hash=$("$bin" show "$dir/release.bin.torrent" | awk '/^info-hash/ {print $2}')
rm -rf "$dir/state"
port=$((20000 + RANDOM % 20000))

first_block() {
    /usr/bin/python3 - "$port" "$hash" <<'PY'
import socket, struct, sys, time
port, h = int(sys.argv[1]), bytes.fromhex(sys.argv[2])
t0 = time.monotonic()
def recv(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c: raise ConnectionError("closed")
        b += c
    return b
def msg(s):
    n = struct.unpack(">I", recv(s, 4))[0]
    return recv(s, n) if n else b""
while True:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=600)
        s.sendall(b"\x13BitTorrent protocol" + bytes(8) + h + b"-XX0000-restartbench")
        recv(s, 68)
        s.sendall(struct.pack(">IB", 1, 2))
        while msg(s)[:1] != b"\x01": pass
        s.sendall(struct.pack(">IBIII", 13, 6, 0, 0, 16384))
        while msg(s)[:1] != b"\x07": pass
        break
    except (ConnectionError, OSError):
        time.sleep(0.005)
print(f"{time.monotonic() - t0:.3f}")
PY
}

run() {  # $1: extra flags; prints seconds to first block and the resume/check log lines
    local start end
    SEEDBOX_LOG=info "$bin" seed "$dir/release.bin.torrent" --data "$dir" --no-tracker \
        --listen "127.0.0.1:$port" --threads 2 --stats-every 0 "$@" > /dev/null 2> "$dir/log" &
    local pid=$!
    local secs
    secs=$(first_block)
    kill -INT $pid; wait $pid || true
    echo "$secs s  $(grep -oE 'resume data (used|saved)|[0-9]+ pieces checked in [0-9.]+ s' "$dir/log" | tr '\n' ';')"
}

echo "# $(date -u +%FT%TZ) $(uname -r) $(nproc) cores; data: $dir ($(df -T "$dir" | awk 'NR==2 {print $2}')), ${size} MiB, page cache warm"
echo "# command: benches/restart.sh $size $rounds $dir"
run --state "$dir/state" > /dev/null   # first start with --state: full check, saves resume data
for i in $(seq 1 "$rounds"); do
    echo "round $i without --state: $(run)"
    echo "round $i with    --state: $(run --state "$dir/state")"
done
