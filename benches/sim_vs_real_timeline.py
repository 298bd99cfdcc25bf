"""Per-peer start-up timeline of a `benches/sim_vs_real.py --log-dir DIR` run.

Usage: /usr/bin/python3 benches/sim_vs_real_timeline.py RESULT.json DIR
For every leecher, seconds from its process start (the script's `started_unix`) to: the
tracker's first answer, its first connected peer (the `--peer` origin), its second (the first
of the tracker's peers), the download's completion as logged, and the reported
`seconds_to_complete` (counted from the session's start, a few ms after the process's).
"""
import datetime, json, os, sys


def ts(line):
    t = line.split()[0]
    return datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def main():
    result, logs = sys.argv[1], sys.argv[2]
    d = json.load(open(result))
    print("peer arrival_s first_announce_s first_peer_s second_peer_s peers_by_completion "
          "complete_logged_s download_s")
    for p in d["peers"]:
        i, t0 = p["peer"], p["started_unix"]
        lines = open(os.path.join(logs, f"peer{i}.log")).read().splitlines()
        ann = [ts(l) - t0 for l in lines if "announced" in l]
        conn = [ts(l) - t0 for l in lines if "peer connected" in l]
        done = [ts(l) - t0 for l in lines if "download complete" in l]
        before = sum(1 for c in conn if done and c < done[0])
        print(i, f"{p['arrival_s']:.3f}", f"{ann[0]:.3f}" if ann else "-",
              f"{conn[0]:.3f}" if conn else "-", f"{conn[1]:.3f}" if len(conn) > 1 else "-",
              before, f"{done[0]:.3f}" if done else "-", f"{p['download_s']:.3f}")


if __name__ == "__main__":
    main()
