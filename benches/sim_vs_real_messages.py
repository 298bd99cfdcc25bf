"""Per-message timelines of a real `seedbox get` swarm and of a simulated one, side by side.

Real: a `benches/sim_vs_real.py --log-dir DIR --log-filter
debug,seedbox::engine::download::session=trace` run; each leecher logs every message it
receives and sends (`message` lines: session time, direction, the peer's listen address) and
its `listening` port. Simulator: a trace of one line per delivered message,
`T <virtual µs> <from> <to> <message name> <piece> <offset>` (peers numbered from 1 by
arrival, 0 the origin), as the patch `wip/sim-message-trace.patch` prints on stderr with
`SIMTRACE=1`.

Prints, for each side given: every peer's upload per second (from the blocks received), what
newcomer 3 sent each earlier peer from 6 to 8 s, what peer 0 got from peers by 14 s, and the
origin's bytes per 2 s split into pieces no other leecher had announced yet and pieces
another one had.

Usage: python3 benches/sim_vs_real_messages.py [--real RUN.json LOGDIR] [--sim TRACE]...
"""
import argparse, collections, datetime, json, os, re

BLOCK = 16384
LINE = re.compile(r'^(\S+) TRACE message t_ms=\d+ dir="(\w+)" key=\d+ '
                  r'peer=Some\([\d.]+:(\d+)\) msg="([^"]+)" piece=(\d+) offset=(\d+)')


def real_events(run_json, log_dir):
    """(t_s, from, to, message, piece, offset), t from the first leecher's start; the origin
    is 'O'. Messages to the origin are taken from the senders' logs (the seed logs none)."""
    d = json.load(open(run_json))
    t0 = d["peers"][0]["started_unix"] - d["peers"][0]["arrival_s"]
    port = {}
    for p in d["peers"]:
        for line in open(os.path.join(log_dir, f"peer{p['peer']}.log")):
            m = re.search(r"listening listen_port=(\d+)", line)
            if m:
                port[int(m.group(1))] = p["peer"]
                break
    # The origin: the first peer's first message comes from it (its only `--peer`).
    for line in open(os.path.join(log_dir, "peer0.log")):
        m = LINE.match(line)
        if m:
            origin_port = int(m.group(3))
            break
    ev = []
    for p in d["peers"]:
        i = p["peer"]
        for line in open(os.path.join(log_dir, f"peer{i}.log")):
            m = LINE.match(line)
            if not m:
                continue
            wall, direction, prt, msg, piece, off = m.groups()
            t = datetime.datetime.fromisoformat(wall.replace("Z", "+00:00")).timestamp() - t0
            other = "O" if int(prt) == origin_port else port.get(int(prt))
            if other is None:
                continue  # an incoming connection before its listen port is known
            piece = -1 if int(piece) == 4294967295 else int(piece)
            if direction == "in":
                ev.append((t, other, i, msg, piece, int(off)))
            elif other == "O":
                ev.append((t, i, "O", msg, piece, int(off)))
    ev.sort(key=lambda e: e[0])
    return ev


def sim_events(trace):
    ev = []
    for line in open(trace):
        if not line.startswith("T "):
            continue
        parts = line.split()
        frm, to = int(parts[2]), int(parts[3])
        ev.append((int(parts[1]) / 1e6, "O" if frm == 0 else frm - 1, "O" if to == 0 else to - 1,
                   " ".join(parts[4:-2]), int(parts[-2]), int(parts[-1])))
    return ev


def report(name, ev):
    up = collections.defaultdict(float)
    for t, f, g, m, p, o in ev:
        if m == "piece" and t < 18:
            up[(int(t), f)] += BLOCK
    print(f"## {name}: upload MB/s per second, peers 0-7, then the origin")
    for sec in range(2, 18):
        print(f"{sec:2d}-{sec + 1:2d} s", " ".join(f"{up[(sec, i)] / 1e6:4.1f}" for i in range(8)),
              f"{up[(sec, 'O')] / 1e6:4.1f}")
    to = collections.defaultdict(float)
    got = collections.defaultdict(float)
    for t, f, g, m, p, o in ev:
        if m == "piece" and 6 <= t < 8 and f == 3:
            to[g] += BLOCK
        if m == "piece" and t < 14 and g == 0:
            got["origin" if f == "O" else "peers"] += BLOCK
    print("peer 3 to each, 6-8 s, MB/s:", {k: round(v / 2e6, 2) for k, v in sorted(to.items())})
    print("peer 0 received by 14 s, MB:", {k: round(v / 1e6, 1) for k, v in got.items()})
    holders = collections.defaultdict(set)
    per = collections.defaultdict(lambda: [0, 0])
    for t, f, g, m, p, o in ev:
        if t > 18:
            break
        if m == "have" and f != "O":
            holders[p].add(f)
        if m == "piece" and f == "O":
            per[int(t // 2) * 2][1 if holders[p] - {g} else 0] += BLOCK
    print("origin MB per 2 s [pieces no other leecher announced, pieces another one had]:",
          {k: (round(a / 1e6, 1), round(b / 1e6, 1)) for k, (a, b) in sorted(per.items())})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--real", nargs=2, action="append", default=[], metavar=("RUN", "LOGDIR"))
    ap.add_argument("--sim", action="append", default=[], metavar="TRACE")
    a = ap.parse_args()
    for run, logs in a.real:
        report(f"real {run}", real_events(run, logs))
    for trace in a.sim:
        report(f"simulator {trace}", sim_events(trace))


if __name__ == "__main__":
    main()
