"""Helpers shared by the Python bench drivers in benches/ (imported from the script's own
folder, which Python puts first on sys.path)."""
import time


def wait_line(proc, prefix, limit=120):
    """The first line of proc's stdout that starts with prefix, within limit seconds; exits
    the bench with a message naming the command otherwise."""
    deadline = time.time() + limit
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(prefix):
            return line
    raise SystemExit('no %r line from %s' % (prefix, proc.args))
