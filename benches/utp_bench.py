"""uTP against TCP on loopback, side by side in one run (benches/utp.sh runs it).

Two seeds run for the whole benchmark: `seedbox seed` (TCP and uTP, its defaults) and a
libtorrent high_performance_seed with TCP off (uTP only). Each round downloads the file once
per case, in alternating order:

  seedbox-seed>lt/utp   libtorrent leecher, uTP only, from seedbox seed
  seedbox-seed>lt/tcp   libtorrent leecher, TCP only, from seedbox seed
  lt-seed>lt/utp        libtorrent leecher, uTP only, from the libtorrent seed (the reference)
  lt-seed>get/utp       seedbox get from the libtorrent seed (uTP: the seed refuses TCP)

For each transfer: seconds (the leecher's own: libtorrent's DONE line, get's
seconds_to_complete), the seed process's CPU seconds over the transfer (utime + stime from
/proc/PID/stat, sampled before and after), the leecher process's CPU seconds (wait4 rusage),
both per GiB. Every download is compared byte for byte with the source.

usage: utp_bench.py SEEDBOX FILE TORRENT WORKDIR RUNS RAW_OUT
"""
import os, resource, subprocess, sys, time

from bench_support import wait_line

SEEDBOX, FILE, TORRENT, WORK, RUNS, RAW = sys.argv[1:7]
RUNS = int(RUNS)
PY = '/usr/bin/python3'
LT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'support', 'lt_peer.py')
TICKS = os.sysconf('SC_CLK_TCK')
SIZE = os.path.getsize(FILE)
GIB = SIZE / (1 << 30)


def cpu_of(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def same(a, b):
    with open(a, 'rb') as x, open(b, 'rb') as y:
        while True:
            p, q = x.read(1 << 20), y.read(1 << 20)
            if p != q:
                return False
            if not p:
                return True


def run_child(args):
    """Runs a leecher to its exit: (stdout, CPU seconds from its rusage)."""
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = '', ''
    _, status, ru = os.wait4(p.pid, 0)
    out = p.stdout.read()
    err = p.stderr.read()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit('%s failed (%d): %s %s' % (args[:3], p.returncode, out[-2000:], err[-2000:]))
    return out, ru.ru_utime + ru.ru_stime


src_dir = os.path.dirname(FILE)
sb_seed = subprocess.Popen([SEEDBOX, 'seed', TORRENT, '--data', src_dir, '--listen', '127.0.0.1:0',
                            '--no-tracker', '--no-dht'],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
sb_port = int(wait_line(sb_seed, 'listening').split()[1].rsplit(':', 1)[1])
lt_seed = subprocess.Popen([PY, LT, '--torrent', TORRENT, '--save', src_dir, '--mode', 'seed',
                            '--high-performance-seed', '--transport', 'utp', '--timeout', '86400'],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
lt_port = int(wait_line(lt_seed, 'LISTEN').split()[1])
# lt_peer.py prints PROGRESS lines every second: drain them so its pipe never fills.
import threading
threading.Thread(target=lambda: [None for _ in lt_seed.stdout], daemon=True).start()
threading.Thread(target=lambda: [None for _ in sb_seed.stdout], daemon=True).start()


def lt_leech(port, transport, dl):
    out, cpu = run_child([PY, LT, '--torrent', TORRENT, '--save', dl, '--mode', 'leech',
                          '--transport', transport, '--connect', '127.0.0.1:%d' % port,
                          '--timeout', '900'])
    done = [l for l in out.splitlines() if l.startswith('DONE')]
    return float(done[0].split()[1]), cpu


def get_leech(port, dl):
    import json
    out, cpu = run_child([SEEDBOX, 'get', TORRENT, '-o', dl, '--peer', '127.0.0.1:%d' % port,
                          '--listen', '127.0.0.1:0', '--no-tracker', '--no-dht', '--json',
                          '--linger', '0', '--stall-timeout', '5m'])
    return float(json.loads(out)['seconds_to_complete']), cpu


CASES = [
    ('seedbox-seed>lt/utp', sb_seed.pid, lambda dl: lt_leech(sb_port, 'utp', dl)),
    ('seedbox-seed>lt/tcp', sb_seed.pid, lambda dl: lt_leech(sb_port, 'tcp', dl)),
    ('lt-seed>lt/utp', lt_seed.pid, lambda dl: lt_leech(lt_port, 'utp', dl)),
    ('lt-seed>get/utp', lt_seed.pid, lambda dl: get_leech(lt_port, dl)),
]

with open(RAW, 'w') as raw:
    raw.write('# case seconds MiB/s seed_cpu_s leecher_cpu_s seed_cpu_s_per_GiB leecher_cpu_s_per_GiB load1\n')
    try:
        for r in range(RUNS):
            order = CASES if r % 2 == 0 else list(reversed(CASES))
            for name, seed_pid, leech in order:
                dl = os.path.join(WORK, 'dl')
                subprocess.run(['rm', '-rf', dl], check=True)
                os.makedirs(dl)
                before = cpu_of(seed_pid)
                secs, leech_cpu = leech(dl)
                seed_cpu = cpu_of(seed_pid) - before
                if not same(FILE, os.path.join(dl, os.path.basename(FILE))):
                    raise SystemExit('%s: the download differs from the source' % name)
                load = open('/proc/loadavg').read().split()[0]
                line = '%s %.3f %.1f %.2f %.2f %.2f %.2f %s' % (
                    name, secs, SIZE / (1 << 20) / secs, seed_cpu, leech_cpu,
                    seed_cpu / GIB, leech_cpu / GIB, load)
                print(line, flush=True)
                raw.write(line + '\n')
                raw.flush()
    finally:
        for p in (sb_seed, lt_seed):
            p.kill()
            p.wait()
