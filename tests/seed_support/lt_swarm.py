"""A swarm of libtorrent leechers for seedbox interop tests.

usage: lt_swarm.py TORRENT SAVE_BASE HOST PORT N TIMEOUT_SECS
Starts N libtorrent sessions (TCP only, uTP off) saving to SAVE_BASE/0 .. SAVE_BASE/N-1, each
connected to the seed at HOST:PORT and to every other session, and waits until every one is
complete (libtorrent has checked every piece). Exits 0 then, printing per-session and total
payload counts and `origin BYTES`: what came from the seed (payload downloaded minus payload
uploaded among the sessions); 1 on timeout.
"""
import os
import sys
import time

try:
    import libtorrent as lt
except ImportError:
    sys.stderr.write("python module libtorrent missing: install the Debian package python3-libtorrent\n")
    sys.exit(3)

torrent, base, host, port, n, limit = (
    sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]))
sessions, handles = [], []
for i in range(n):
    ses = lt.session({
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "listen_interfaces": "127.0.0.1:0",
        "allow_multiple_connections_per_ip": True,
        "alert_mask": lt.alert.category_t.error_notification,
    })
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent)
    params.save_path = os.path.join(base, str(i))
    os.makedirs(params.save_path, exist_ok=True)
    sessions.append(ses)
    handles.append(ses.add_torrent(params))
ports = [s.listen_port() for s in sessions]
start = time.time()
last_connect = 0.0
done_at = [None] * n
while True:
    now = time.time()
    if now - last_connect > 2.0:
        for i, h in enumerate(handles):
            h.connect_peer((host, port))
            for j, p in enumerate(ports):
                if j != i:
                    h.connect_peer(("127.0.0.1", p))
        last_connect = now
    st = [h.status() for h in handles]
    for i, s in enumerate(st):
        if done_at[i] is None and (s.is_seeding or s.state == lt.torrent_status.seeding):
            done_at[i] = now - start
    if all(d is not None for d in done_at):
        down = sum(s.total_payload_download for s in st)
        up = sum(s.total_payload_upload for s in st)
        for i, s in enumerate(st):
            print("leecher %d done in %.2f s: down %d up %d" % (
                i, done_at[i], s.total_payload_download, s.total_payload_upload), flush=True)
        print("origin %d" % (down - up), flush=True)
        sys.exit(0)
    if now - start > limit:
        for i, s in enumerate(st):
            print("leecher %d: progress %.3f peers %d state %s" % (i, s.progress, s.num_peers, s.state), flush=True)
        sys.exit(1)
    time.sleep(0.1)
