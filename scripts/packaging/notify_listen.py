"""Stands in for systemd's notification socket: binds a datagram socket at PATH, prints
each sd_notify message as it arrives, and exits after STOPPING=1 or TIMEOUT seconds.

usage: python3 notify_listen.py PATH TIMEOUT
"""
import os
import socket
import sys
import time

path, timeout = sys.argv[1], float(sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)  # the service runs as another user
deadline = time.monotonic() + timeout
print("listening", flush=True)
while True:
    left = deadline - time.monotonic()
    if left <= 0:
        sys.exit(1)
    s.settimeout(left)
    try:
        msg = s.recv(4096).decode()
    except socket.timeout:
        sys.exit(1)
    for line in msg.splitlines():
        print(line, flush=True)
    if "STOPPING=1" in msg.splitlines():
        sys.exit(0)
