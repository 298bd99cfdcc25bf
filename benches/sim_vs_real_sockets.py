"""Samples every established loopback TCP socket while `benches/sim_vs_real.py` runs, for
who-sends-to-whom in the real swarm.

Usage: /usr/bin/python3 benches/sim_vs_real_sockets.py OUT.jsonl SECONDS [PERIOD_S]
Start it just before `sim_vs_real.py`. Each line: {"t": unix time, "s": [[local, remote,
bytes_acked, bytes_received, pid], ...], "names": {pid: "peerN" | "seed" | "?"}} from
`ss -tinp` every PERIOD_S (0.25 s). A socket's owner is its pid (named from the `-o .../peerN`
of its command line); the remote end's owner is the owner of the mirror socket. Other
loopback traffic on the machine is sampled too and has no name.
"""
import subprocess, time, sys, json, re
out = open(sys.argv[1], "w")
end = time.time() + float(sys.argv[2])
period = float(sys.argv[3]) if len(sys.argv) > 3 else 0.25
known = {}
while time.time() < end:
    t = time.time()
    r = subprocess.run(["ss", "-tinpH", "state", "established", "dst", "127.0.0.1"], capture_output=True, text=True).stdout
    lines = r.splitlines()
    rows = []
    i = 0
    while i < len(lines):
        l = lines[i].split()
        if len(l) >= 4 and ":" in l[2]:
            m = re.search(r"pid=(\d+)", lines[i])
            info = lines[i+1] if i + 1 < len(lines) else ""
            d = {}
            for tok in info.split():
                if ":" in tok:
                    k, v = tok.split(":", 1)
                    if k in ("bytes_acked", "bytes_received"):
                        d[k] = int(v)
            rows.append([l[2], l[3], d.get("bytes_acked", 0), d.get("bytes_received", 0), int(m.group(1)) if m else 0])
            i += 2
        else:
            i += 1
    names = {}
    for row in rows:
        pid = row[4]
        if pid and pid not in known:
            try:
                cmd = open(f"/proc/{pid}/cmdline").read().split("\0")
                m = [re.search(r"/(peer\d+)$", c) for c in cmd]
                m = [x.group(1) for x in m if x]
                known[pid] = m[0] if m else ("seed" if "seed" in cmd else "?")
            except OSError:
                known[pid] = "?"
            names[pid] = known[pid]
    out.write(json.dumps({"t": t, "s": rows, "names": names}) + "\n")
    time.sleep(max(0, period - (time.time() - t)))
