"""libtorrent leecher given only a magnet link, for seedbox's discovery interop tests.

usage: lt_magnet.py MAGNET SAVE_DIR TIMEOUT_SECS [HOST:PORT ...]
TCP only (uTP off both ways), no DHT/LSD/UPnP. Peers come from the magnet link (tr=, x.pe=)
and any HOST:PORT given. Prints METADATA when the info dictionary arrived and DONE when every
piece is checked; exits 0 then, 1 on timeout.
"""
import sys
import time

import libtorrent as lt

magnet, save, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
peers = [p.rsplit(':', 1) for p in sys.argv[4:]]
ses = lt.session({
    'listen_interfaces': '127.0.0.1:0',
    'enable_outgoing_utp': False,
    'enable_incoming_utp': False,
    'enable_dht': False,
    'enable_lsd': False,
    'enable_upnp': False,
    'enable_natpmp': False,
    'allow_multiple_connections_per_ip': True,
    'alert_mask': lt.alert.category_t.error_notification | lt.alert.category_t.status_notification,
})
params = lt.parse_magnet_uri(magnet)
params.save_path = save
h = ses.add_torrent(params)
start = time.time()
said_metadata = False
last_connect = 0
while time.time() - start < limit:
    s = h.status()
    if s.has_metadata and not said_metadata:
        said_metadata = True
        print('METADATA %.2f' % (time.time() - start), flush=True)
    if s.is_seeding:
        print('DONE %.2f' % (time.time() - start), flush=True)
        sys.exit(0)
    if time.time() - last_connect > 1 and s.num_peers == 0:
        last_connect = time.time()
        for host, port in peers:
            h.connect_peer((host, int(port)))
    for a in ses.pop_alerts():
        if isinstance(a, (lt.torrent_error_alert, lt.metadata_failed_alert)):
            print('alert: %s' % a.message(), flush=True)
    time.sleep(0.05)
s = h.status()
print('TIMEOUT has_metadata=%s progress=%.3f peers=%d' % (s.has_metadata, s.progress, s.num_peers), flush=True)
sys.exit(1)
