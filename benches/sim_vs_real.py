"""A real swarm of `seedbox get` processes on loopback, for comparison with `seedbox sim`.

One `seedbox seed` origin with an upload limit, `seedbox tracker`, and PEERS leechers started
EVERY seconds apart, each with an upload limit, lingering LINGER seconds after completing.
Prints one JSON object: the parameters, every leecher's download time (seconds from its start
to the moment it had verified the whole torrent), their median and p95 (interpolated:
p50_s, p95_s; and by nearest rank as `seedbox sim` computes them: p50_rank_s, p95_rank_s).
It also names the release's piece length and the `seedbox sim` command that models the same
swarm (piece_length, sim_command): the simulator must be given the real release's pieces.

Usage: /usr/bin/python3 benches/sim_vs_real.py --seedbox target/release/seedbox [options]
(benches/sim-vs-real.sh runs it beside the simulator and writes the comparison.)
"""
import argparse, json, math, os, socket, subprocess, sys, tempfile, time

from bench_support import wait_line


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def percentile(values, q):
    v = sorted(values)
    if not v:
        return None
    k = (len(v) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def nearest_rank(values, q):
    """The q-quantile as `seedbox sim` reports it (src/sim/report.rs `percentile`): the
    ceil(q * n)-th smallest value, no interpolation."""
    v = sorted(values)
    if not v:
        return None
    return v[min(max(math.ceil(q * len(v)), 1), len(v)) - 1]


def sim_command(a, piece_length):
    """The `seedbox sim` command that models this swarm (add `--rng-seed N --json`)."""
    return (f"seedbox sim --size {a.size_mib}MiB --piece-length {piece_length} "
            f"--seed-up {a.seed_up} --peer-up {a.peer_up} --peer-down 10Gbit "
            f"--arrivals '{a.peers} every {a.every:g}s' --linger {a.linger}s "
            f"--unchoke-slots {a.unchoke_slots} "
            f"--peer-unchoke-slots {a.peer_unchoke_slots or a.unchoke_slots} --rtt 1ms")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seedbox", required=True)
    p.add_argument("--size-mib", type=int, default=32)
    p.add_argument("--peers", type=int, default=30)
    p.add_argument("--every", type=float, default=2.0, help="seconds between arrivals")
    p.add_argument("--seed-up", default="32Mbit")
    p.add_argument("--peer-up", default="16Mbit")
    p.add_argument("--linger", type=int, default=60, help="seconds each leecher seeds after")
    p.add_argument("--unchoke-slots", default="4",
                   help="the origin's --unchoke-slots (auto, N or unlimited)")
    p.add_argument("--peer-unchoke-slots", default=None,
                   help="the leechers' --unchoke-slots (default: the same as the origin's)")
    p.add_argument("--piece-length", default="auto",
                   help="the release's piece length (`seedbox create --piece-length`); the "
                   "simulator must be run with the same (the JSON's piece_length)")
    p.add_argument("--interval", type=int, default=10, help="tracker announce interval, s")
    p.add_argument("--log-filter", default="debug",
                   help="SEEDBOX_LOG for the processes with --log-dir (e.g. "
                   "debug,seedbox::engine::download::session=trace: every message)")
    p.add_argument("--timeout", type=int, default=900)
    p.add_argument("--log-dir", help="keep every process's stderr here, at SEEDBOX_LOG=debug "
                   "(peerN.log, seed.log); timestamps are UTC wall clock")
    a = p.parse_args()
    sb = os.path.abspath(a.seedbox)
    work = tempfile.mkdtemp(prefix="sim-vs-real-")
    procs = []
    env = dict(os.environ)
    if a.log_dir:
        os.makedirs(a.log_dir, exist_ok=True)
        env["SEEDBOX_LOG"] = a.log_filter

    def log(name):
        if not a.log_dir:
            return subprocess.DEVNULL
        return open(os.path.join(a.log_dir, name), "w")
    try:
        src = os.path.join(work, "origin")
        os.makedirs(src)
        data = os.path.join(src, "release.bin")
        with open(data, "wb") as f:
            f.write(os.urandom(a.size_mib << 20))
        tport = free_port()
        tracker = subprocess.Popen(
            [sb, "tracker", "--listen", f"127.0.0.1:{tport}", "--no-udp",
             "--interval", str(a.interval), "--min-interval", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(tracker)
        torrent = os.path.join(work, "release.torrent")
        subprocess.run([sb, "create", data, "-o", torrent, "--announce",
                        f"http://127.0.0.1:{tport}/announce", "--no-date", "-q",
                        "--piece-length", a.piece_length], check=True,
                       stdout=subprocess.DEVNULL)
        shown = subprocess.run([sb, "show", "--json", torrent], check=True,
                               capture_output=True, text=True).stdout
        piece_length = json.loads(shown)["piece_length"]
        sport = free_port()
        seed = subprocess.Popen(
            [sb, "seed", torrent, "--data", src, "--listen", f"127.0.0.1:{sport}",
             "--threads", "1", "--max-upload-rate", a.seed_up,
             "--unchoke-slots", str(a.unchoke_slots)],
            stdout=subprocess.PIPE, stderr=log("seed.log"), text=True, env=env)
        procs.append(seed)
        wait_line(seed, "listening")
        time.sleep(1)
        leechers = []
        t0 = time.time()
        for i in range(a.peers):
            target = t0 + i * a.every
            time.sleep(max(0.0, target - time.time()))
            out = os.path.join(work, f"peer{i}")
            cmd = [sb, "get", torrent, "-o", out, "--listen", "127.0.0.1:0",
                   "--peer", f"127.0.0.1:{sport}", "--max-upload-rate", a.peer_up,
                   "--unchoke-slots", str(a.peer_unchoke_slots or a.unchoke_slots),
                   "--linger", f"{a.linger}s", "--json", "--quiet"]
            started_at = time.time()
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log(f"peer{i}.log"),
                                    text=True, env=env)
            procs.append(proc)
            leechers.append((i, started_at - t0, started_at, out, proc))
        # Each leecher reports its time to a verified whole file when it exits (after linger).
        deadline = time.time() + a.timeout
        results = []
        for i, started, started_at, out, proc in leechers:
            try:
                stdout, _ = proc.communicate(timeout=max(1, deadline - time.time()))
                report = json.loads(stdout)
                results.append({"peer": i, "arrival_s": round(started, 3),
                                "started_unix": round(started_at, 6),
                                "download_s": report.get("seconds_to_complete"),
                                "uploaded": report.get("uploaded"),
                                "downloaded": report.get("downloaded")})
            except Exception as e:  # a leecher that never finished is reported as such
                results.append({"peer": i, "arrival_s": round(started, 3), "download_s": None,
                                "error": str(e)})
        times = [r["download_s"] for r in results if r["download_s"] is not None]
        print(json.dumps({
            "params": vars(a) | {"seedbox": a.seedbox},
            # What `seedbox sim --piece-length` must be given to model this swarm.
            "piece_length": piece_length,
            "sim_command": sim_command(a, piece_length),
            "completed": len(times),
            "p50_s": percentile(times, 0.5),
            "p95_s": percentile(times, 0.95),
            "mean_s": sum(times) / len(times) if times else None,
            # The same quantiles by the simulator's definition (nearest rank): compare these
            # with `seedbox sim`'s p50_s / p95_s. p50_s / p95_s above interpolate linearly.
            "p50_rank_s": nearest_rank(times, 0.5),
            "p95_rank_s": nearest_rank(times, 0.95),
            "peers": results,
        }, indent=1))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except Exception:
                proc.kill()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
