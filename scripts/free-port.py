#!/usr/bin/env python3
"""Prints a loopback TCP port, free now, for a server a script starts and that binds it some
time later.

Not port 0's answer: a port the kernel hands out for port 0 and that is then released can
be taken before the server binds it, as the local port of any outgoing connection, since
both come from the ephemeral range. These come from below that range, which the kernel
never hands out on its own (the same policy as tests/it/support/ports.rs).
"""
import random
import socket
import sys

FLOOR = 10000


def port_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(v) for v in f.read().split())
    except (OSError, ValueError):
        lo, hi = 32768, 60999
    if lo > FLOOR + 1000:
        return FLOOR, lo
    if hi + 1000 < 65535:
        return hi + 1, 65536
    sys.exit(f"free-port: ip_local_port_range {lo}-{hi} leaves no ports outside it")


def bindable(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def main():
    start, end = port_range()
    span = end - start
    at = random.randrange(span)
    for i in range(span):
        port = start + (at + i) % span
        if bindable(port):
            print(port)
            return
    sys.exit(f"free-port: no free loopback port in {start}-{end}")


if __name__ == "__main__":
    main()
