"""A libtorrent peer for seedbox's interop tests and benchmarks.

Run with Debian's python: /usr/bin/python3 tests/support/lt_peer.py --torrent T --save DIR ...
Prints one line per event on stdout, flushed:
  LISTEN <port>                 once listening
  PROGRESS <fraction> <down B/s> <up B/s> <peers>   about every second
  DONE <seconds>                when the torrent is complete (leech mode)
  ERROR <message>               on a torrent error
  CHOKED <0|1>                  about every second with --report-choke: 1 when no
                                connected peer unchokes us (or none is connected)
  PEERS <peer> ...              about every second with --report-peers: each peer whose
                                handshake is done, as IP:PORT/SOURCE/DIRECTION, SOURCE `pex`
                                when libtorrent learned it by PEX (else `-`), DIRECTION `out`
                                when libtorrent connected to it, `in` when it connected to us
In seed mode LISTEN comes only once the session answers a handshake for the torrent.
It runs until killed (seed mode) or, in leech mode, exits after DONE unless --stay.
"""
import argparse, os, socket, sys, time
import libtorrent as lt

p = argparse.ArgumentParser()
p.add_argument('--torrent', required=True)
p.add_argument('--save', required=True)
p.add_argument('--mode', choices=['seed', 'leech'], default='leech')
p.add_argument('--port', type=int, default=0)
p.add_argument('--connect', action='append', default=[], help='IP:PORT of a peer')
p.add_argument('--high-performance-seed', action='store_true')
p.add_argument('--download-limit', type=int, default=0, help='bytes/s for this torrent')
p.add_argument('--upload-limit', type=int, default=0, help='bytes/s for this torrent')
p.add_argument('--timeout', type=float, default=600)
p.add_argument('--stay', action='store_true', help='keep running after DONE')
p.add_argument('--report-choke', action='store_true', help='print CHOKED lines (leech mode)')
p.add_argument('--tracker', action='store_true', help='announce to the torrent\'s trackers')
p.add_argument('--check', action='store_true',
               help='seed mode: check the data at start (the default seed_mode trusts it and '
                    'hashes each piece on its first request instead)')
p.add_argument('--plaintext', action='store_true',
               help='no protocol encryption (libtorrent\'s default first tries an encrypted '
                    'handshake on outgoing connections, then falls back to plaintext)')
p.add_argument('--forced-encryption', choices=['rc4', 'both'],
               help='encrypted connections only (out_enc_policy and in_enc_policy pe_forced), '
                    'with allowed_enc_level rc4 or both; applied once LISTEN is due (the '
                    'readiness probe of seed mode is a plain handshake)')
p.add_argument('--report-peers', action='store_true', help='print PEERS lines')
p.add_argument('--disable-pex', action='store_true',
               help='ignore ut_pex messages for the torrent (torrent_flags.disable_pex)')
p.add_argument('--transport', choices=['tcp', 'utp', 'both'], default='tcp',
               help='tcp (default): uTP off both ways; utp: uTP only, TCP off both ways once '
                    'LISTEN is due (the readiness probe of seed mode is a TCP handshake); '
                    'both: TCP and uTP, libtorrent\'s default')
a = p.parse_args()

settings = lt.high_performance_seed() if a.high_performance_seed else lt.default_settings()
settings.update({
    'listen_interfaces': '127.0.0.1:%d' % a.port,
    'enable_outgoing_utp': False,
    'enable_incoming_utp': False,
    'enable_dht': False,
    'enable_lsd': False,
    'enable_upnp': False,
    'enable_natpmp': False,
    'allow_multiple_connections_per_ip': True,
    'alert_mask': lt.alert.category_t.error_notification | lt.alert.category_t.status_notification,
    'announce_to_all_trackers': True,
    'announce_to_all_tiers': True,
})
if a.transport != 'tcp':
    settings.update({'enable_outgoing_utp': True, 'enable_incoming_utp': True})
if a.plaintext:
    settings.update({'out_enc_policy': lt.enc_policy.disabled,
                     'in_enc_policy': lt.enc_policy.disabled})
ses = lt.session(settings)
params = lt.add_torrent_params()
params.ti = lt.torrent_info(a.torrent)
params.save_path = a.save
if a.disable_pex:
    params.flags |= lt.torrent_flags.disable_pex
if a.mode == 'seed' and not a.check:
    params.flags |= lt.torrent_flags.seed_mode
if not a.tracker:
    params.trackers = []
    params.ti = lt.torrent_info(a.torrent)
h = ses.add_torrent(params)
if not a.tracker:
    h.replace_trackers([])
if a.download_limit:
    h.set_download_limit(a.download_limit)
if a.upload_limit:
    h.set_upload_limit(a.upload_limit)

deadline = time.time() + a.timeout
ready = (lt.torrent_status.states.seeding, lt.torrent_status.states.downloading,
         lt.torrent_status.states.finished)
while (ses.listen_port() == 0 or h.status().state not in ready) and time.time() < deadline:
    time.sleep(0.05)


def answers_handshake(port, info_hash):
    """True once the session answers a BitTorrent handshake for the torrent on `port`.
    libtorrent reports `seeding` and a listen port a moment before it accepts peers for the
    torrent (it reset connections for about half a second after that here)."""
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=1) as s:
            s.sendall(b'\x13BitTorrent protocol' + bytes(8) + info_hash + os.urandom(20))
            got = b''
            while len(got) < 48:
                chunk = s.recv(68)
                if not chunk:
                    return False
                got += chunk
            return got[28:48] == info_hash
    except OSError:
        return False


if a.mode == 'seed':
    info_hash = bytes.fromhex(str(params.ti.info_hashes().v1))
    while not answers_handshake(ses.listen_port(), info_hash) and time.time() < deadline:
        time.sleep(0.1)
if a.forced_encryption:
    level = lt.enc_level.rc4 if a.forced_encryption == 'rc4' else lt.enc_level.both
    ses.apply_settings({'out_enc_policy': int(lt.enc_policy.forced),
                        'in_enc_policy': int(lt.enc_policy.forced),
                        'allowed_enc_level': int(level)})
if a.transport == 'utp':
    ses.apply_settings({'enable_outgoing_tcp': False, 'enable_incoming_tcp': False})
print('LISTEN %d' % ses.listen_port(), flush=True)
for peer in a.connect:
    host, port = peer.rsplit(':', 1)
    h.connect_peer((host, int(port)))

start = time.time()
done = False
last = 0
while time.time() < deadline:
    for alert in ses.pop_alerts():
        if isinstance(alert, lt.torrent_error_alert):
            print('ERROR %s' % alert.message(), flush=True)
    s = h.status()
    now = time.time()
    if now - last >= 1:
        last = now
        print('PROGRESS %.4f %d %d %d' % (s.progress, s.download_rate, s.upload_rate, s.num_peers), flush=True)
        if a.report_peers:
            peers = []
            for pi in h.get_peer_info():
                if pi.flags & (lt.peer_info.connecting | lt.peer_info.handshake):
                    continue
                peers.append('%s:%d/%s/%s' % (pi.ip[0], pi.ip[1],
                                              'pex' if pi.source & lt.peer_info.pex else '-',
                                              'out' if pi.flags & lt.peer_info.local_connection else 'in'))
            print('PEERS %s' % ' '.join(peers), flush=True)
        if a.report_choke and not s.is_seeding:
            unchoked = any(not (p.flags & lt.peer_info.remote_choked) for p in h.get_peer_info())
            print('CHOKED %d' % (0 if unchoked else 1), flush=True)
        # Keep asking for the explicit peers (libtorrent drops failed ones).
        if a.mode == 'leech' and not s.is_seeding:
            for peer in a.connect:
                host, port = peer.rsplit(':', 1)
                h.connect_peer((host, int(port)))
    if a.mode == 'leech' and not done and s.is_seeding:
        done = True
        print('DONE %.3f' % (now - start), flush=True)
        if not a.stay:
            sys.exit(0)
    time.sleep(0.05)
print('ERROR timeout', flush=True)
sys.exit(2)
