"""libtorrent leecher for seedbox interop tests.

usage: lt_leech.py TORRENT SAVE_DIR HOST PORT TIMEOUT_SECS [utp]
Connects to one peer (TCP only, uTP off both ways; with `utp`: uTP only, TCP off both ways), downloads, exits 0 when the torrent is
complete (libtorrent has checked every piece), 1 on timeout or error. Prints progress lines.
"""
import sys
import time

try:
    import libtorrent as lt
except ImportError:
    sys.stderr.write("python module libtorrent missing: install the Debian package python3-libtorrent\n")
    sys.exit(3)

torrent, save, host, port, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
settings = {
    "enable_outgoing_utp": False,
    "enable_incoming_utp": False,
    "enable_dht": False,
    "enable_lsd": False,
    "enable_upnp": False,
    "enable_natpmp": False,
    "listen_interfaces": "127.0.0.1:0",
    "allow_multiple_connections_per_ip": True,
    "alert_mask": lt.alert.category_t.error_notification | lt.alert.category_t.peer_notification,
}
if len(sys.argv) > 6 and sys.argv[6] == "utp":
    settings.update({
        "enable_outgoing_utp": True,
        "enable_incoming_utp": True,
        "enable_outgoing_tcp": False,
        "enable_incoming_tcp": False,
    })
ses = lt.session(settings)
info = lt.torrent_info(torrent)
params = lt.add_torrent_params()
params.ti = info
params.save_path = save
h = ses.add_torrent(params)
h.connect_peer((host, port))
start = time.time()
last_connect = start
while True:
    s = h.status()
    if s.is_seeding or s.state == lt.torrent_status.seeding:
        print("done %d bytes in %.2f s" % (s.total_wanted, time.time() - start), flush=True)
        sys.exit(0)
    now = time.time()
    if now - start > limit:
        print("timeout: progress %.3f peers %d state %s" % (s.progress, s.num_peers, s.state), flush=True)
        for a in ses.pop_alerts():
            print("alert:", a.message(), flush=True)
        sys.exit(1)
    if s.num_peers == 0 and now - last_connect > 1.0:
        h.connect_peer((host, port))
        last_connect = now
    for a in ses.pop_alerts():
        if isinstance(a, (lt.peer_error_alert, lt.peer_disconnected_alert)):
            print("alert:", a.message(), flush=True)
    time.sleep(0.05)
