#!/usr/bin/python3
"""Opens N BitTorrent connections to a seed, sends each a handshake for INFO_HASH, reads the
seed's handshake back, then keeps them idle until stdin closes. Prints `ready OK FAILED`.
With --churn it instead opens and closes N connections one at a time (each sends a handshake
and waits for the seed to answer or close), for the refused-connections measurement.
Usage: idle_peers.py HOST:PORT INFO_HASH_HEX N [--churn]"""
import os, socket, sys, time

addr, ih_hex, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
churn = '--churn' in sys.argv
host, port = addr.rsplit(':', 1)
port = int(port)
ih = bytes.fromhex(ih_hex)

def handshake():
    return b'\x13BitTorrent protocol' + bytes(8) + ih + b'-ID0001-' + os.urandom(12)

def open_one(i):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b'\x01\x00\x00\x00\x00\x00\x00\x00')
    s.bind(('127.0.0.%d' % (2 + i % 249), 0))
    s.settimeout(30)
    s.connect((host, port))
    s.sendall(handshake())
    return s

def read_handshake(s):
    got = b''
    while len(got) < 68:
        chunk = s.recv(68 - len(got))
        if not chunk:
            return False
        got += chunk
    return got[28:48] == ih

ok = failed = 0
if churn:
    for i in range(n):
        try:
            s = open_one(i)
            s.settimeout(10)
            try:
                if read_handshake(s):
                    ok += 1
                else:
                    failed += 1
            except OSError:
                failed += 1
            s.close()
        except OSError:
            failed += 1
    print('done', ok, failed, flush=True)
    sys.exit(0)

socks = []
for i in range(n):
    try:
        socks.append(open_one(i))
    except OSError as e:
        failed += 1
for s in socks:
    try:
        if read_handshake(s):
            ok += 1
        else:
            failed += 1
    except OSError:
        failed += 1
print('ready', ok, failed, flush=True)
sys.stdin.read()
