"""Many rate-limited libtorrent leechers in one process, for benches/uplink-fill.sh.

Run with Debian's python: /usr/bin/python3 benches/uplink_fill.py --torrent T --save-root DIR
  --connect IP:PORT --leechers 32 --download-limit 2500000 --metrics http://ADDR/metrics
Each leecher is its own libtorrent session (its own port, plaintext, uTP/DHT/LSD off) that
knows only the seed, so everything it downloads comes from the seed. After --warmup seconds
it measures for --duration seconds and prints one line:
  RESULT leechers=N window_s=S leecher_payload_bps=B seed_uploaded_bps=U unchoked_mean=M unchoked_max=X
where B is the leechers' payload download rate summed (total_payload_download deltas) and U
the seed's seedbox_uploaded_bytes_total delta from its /metrics, both in bits per second, and
the unchoked counts are the seed's seedbox_unchoked_peers sampled every second in the window.
"""
import argparse, os, sys, time, urllib.request
import libtorrent as lt

p = argparse.ArgumentParser()
p.add_argument('--torrent', required=True)
p.add_argument('--save-root', required=True)
p.add_argument('--connect', required=True, help='IP:PORT of the seed')
p.add_argument('--leechers', type=int, default=32)
p.add_argument('--download-limit', type=int, default=2_500_000, help='bytes/s per leecher')
p.add_argument('--metrics', required=True, help='the seed admin server\'s /metrics URL')
p.add_argument('--warmup', type=float, default=20)
p.add_argument('--duration', type=float, default=30)
a = p.parse_args()


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + ' ') or line.startswith(name + '{}'):
            return float(line.split()[-1])
    raise SystemExit('no %s in /metrics' % name)


def scrape():
    with urllib.request.urlopen(a.metrics, timeout=10) as r:
        text = r.read().decode()
    return metric(text, 'seedbox_uploaded_bytes_total'), metric(text, 'seedbox_unchoked_peers')


host, port = a.connect.rsplit(':', 1)
seed = (host, int(port))
info = lt.torrent_info(a.torrent)
sessions, handles = [], []
for i in range(a.leechers):
    s = lt.session({
        'listen_interfaces': '127.0.0.1:0',
        'enable_outgoing_utp': False,
        'enable_incoming_utp': False,
        'enable_dht': False,
        'enable_lsd': False,
        'enable_upnp': False,
        'enable_natpmp': False,
        'allow_multiple_connections_per_ip': True,
        'out_enc_policy': lt.enc_policy.disabled,
        'in_enc_policy': lt.enc_policy.disabled,
        'alert_mask': lt.alert.category_t.error_notification,
    })
    params = lt.add_torrent_params()
    params.ti = info
    params.save_path = os.path.join(a.save_root, 'l%02d' % i)
    # The seed sends PEX (BEP 11): without this the leechers find each other through it and
    # trade among themselves, and the seed's uplink is no longer what is measured.
    params.flags |= lt.torrent_flags.disable_pex
    h = s.add_torrent(params)
    h.replace_trackers([])
    h.set_download_limit(a.download_limit)
    h.connect_peer(seed)
    sessions.append(s)
    handles.append(h)


def downloaded():
    total = 0
    for h in handles:
        st = h.status()
        total += st.total_payload_download
        if st.num_peers == 0 and not st.is_seeding:
            h.connect_peer(seed)
    return total


start = time.time()
while time.time() - start < a.warmup:
    time.sleep(1)
    downloaded()
d0, u0 = downloaded(), scrape()[0]
t0 = time.time()
samples = []
while time.time() - t0 < a.duration:
    time.sleep(1)
    samples.append(scrape()[1])
    if any(h.status().is_seeding for h in handles):
        sys.exit('a leecher finished inside the window: use a bigger file')
d1, u1 = downloaded(), scrape()[0]
window = time.time() - t0
print('RESULT leechers=%d window_s=%.1f leecher_payload_bps=%d seed_uploaded_bps=%d '
      'unchoked_mean=%.1f unchoked_max=%d' % (
          a.leechers, window, (d1 - d0) * 8 / window, (u1 - u0) * 8 / window,
          sum(samples) / len(samples), max(samples)), flush=True)
for s, h in zip(sessions, handles):
    s.remove_torrent(h)
