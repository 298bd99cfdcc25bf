"""libtorrent as a DHT node on loopback, for seedbox's DHT interop tests.

usage: lt_dht.py node BOOTSTRAP...
       lt_dht.py seed TORRENT SAVE_DIR BOOTSTRAP...
       lt_dht.py leech MAGNET SAVE_DIR TIMEOUT_SECS BOOTSTRAP...
       lt_dht.py peer TORRENT SAVE_DIR PEER
BOOTSTRAP: HOST:PORT of DHT nodes (none for the first node). Every role prints
`DHT PORT` once listening (the DHT shares the listen port's UDP), then runs until stdin
closes (node, seed) or the download is done (leech: prints DONE and exits 0, or TIMEOUT and
exits 1; peer: connects to PEER (HOST:PORT) with no bootstrap node and prints `NODES n`,
its routing table's size, every 0.5 s, so a node learned from PEER's BEP 5 `port` message
shows). Loopback needs the restrictions on nodes sharing an IP lifted; TCP only for peers;
no tracker, LSD, UPnP or NAT-PMP: the DHT is the only way to find a peer.
"""
import select
import warnings
import sys
import time

import libtorrent as lt

# session.status() (the DHT's node count) is deprecated in 2.0 but still the simplest read.
warnings.simplefilter('ignore', DeprecationWarning)


def session(bootstrap):
    settings = {
        'listen_interfaces': '127.0.0.1:0',
        'enable_outgoing_utp': False,
        'enable_incoming_utp': False,
        'enable_dht': True,
        'dht_bootstrap_nodes': ','.join(bootstrap),
        'dht_restrict_routing_ips': False,
        'dht_restrict_search_ips': False,
        'dht_prefer_verified_node_ids': False,
        'dht_enforce_node_id': False,
        'dht_ignore_dark_internet': False,
        # All nodes share 127.0.0.1: libtorrent would block an IP sending over 5 queries/s.
        'dht_block_ratelimit': 100000,
        'enable_lsd': False,
        'enable_upnp': False,
        'enable_natpmp': False,
        'allow_multiple_connections_per_ip': True,
        'alert_mask': lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.dht_notification,
    }
    ses = lt.session(settings)
    for b in bootstrap:
        host, port = b.rsplit(':', 1)
        ses.add_dht_node((host, int(port)))
    print('DHT %d' % ses.listen_port(), flush=True)
    return ses


def stdin_closed():
    r, _, _ = select.select([sys.stdin], [], [], 0)
    return bool(r) and sys.stdin.read(1) == ''


def show_alerts(ses):
    for a in ses.pop_alerts():
        if isinstance(a, (lt.dht_announce_alert, lt.dht_get_peers_alert)):
            print('alert: %s' % a.message(), flush=True)
        elif isinstance(a, lt.dht_bootstrap_alert):
            print('BOOTSTRAPPED', flush=True)
        elif isinstance(a, (lt.torrent_error_alert, lt.metadata_failed_alert)):
            print('alert: %s' % a.message(), flush=True)


role = sys.argv[1]
if role == 'node':
    ses = session(sys.argv[2:])
    while not stdin_closed():
        show_alerts(ses)
        time.sleep(0.1)
elif role == 'seed':
    torrent, save = sys.argv[2], sys.argv[3]
    ses = session(sys.argv[4:])
    h = ses.add_torrent({'ti': lt.torrent_info(torrent), 'save_path': save})
    last = 0
    while not stdin_closed():
        show_alerts(ses)
        # libtorrent announces a torrent only every 15 minutes on its own.
        if time.time() - last > 3:
            last = time.time()
            h.force_dht_announce()
        time.sleep(0.1)
elif role == 'leech':
    magnet, save, limit = sys.argv[2], sys.argv[3], float(sys.argv[4])
    ses = session(sys.argv[5:])
    params = lt.parse_magnet_uri(magnet)
    params.save_path = save
    h = ses.add_torrent(params)
    start = time.time()
    last = 0
    said_metadata = False
    while time.time() - start < limit:
        show_alerts(ses)
        s = h.status()
        if s.has_metadata and not said_metadata:
            said_metadata = True
            print('METADATA %.2f' % (time.time() - start), flush=True)
        if s.is_seeding:
            print('DONE %.2f' % (time.time() - start), flush=True)
            sys.exit(0)
        # A lookup (get_peers, then announce) every 3 s until a peer is found.
        if time.time() - last > 3 and s.num_peers == 0:
            last = time.time()
            h.force_dht_announce()
        time.sleep(0.05)
    s = h.status()
    print('TIMEOUT has_metadata=%s progress=%.3f peers=%d dht_nodes=%d' % (
        s.has_metadata, s.progress, s.num_peers, ses.status().dht_nodes), flush=True)
    sys.exit(1)
elif role == 'peer':
    torrent, save, peer = sys.argv[2], sys.argv[3], sys.argv[4]
    ses = session([])
    h = ses.add_torrent({'ti': lt.torrent_info(torrent), 'save_path': save})
    host, port = peer.rsplit(':', 1)
    h.connect_peer((host, int(port)))
    while not stdin_closed():
        show_alerts(ses)
        print('NODES %d' % ses.status().dht_nodes, flush=True)
        time.sleep(0.5)
else:
    sys.exit('unknown role %s' % role)
