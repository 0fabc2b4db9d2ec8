"""An SMTP server that answers one byte at a time, forever: a send must hit its deadline.

    python tests/queries/drip_smtp.py --port 2526 --interval 0.2 --drip-at banner|data

Each byte comes well within any socket timeout, so only a deadline on the whole
conversation ends a send. --drip-at banner drips the greeting; --drip-at data talks
normally until the end of DATA and drips the reply to it. Prints "ready" once listening.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
import threading
import time


def drip(conn: socket.socket, interval: float) -> None:
    """An endless multi-line reply: "250-xxxx..." lines that never reach the last one."""
    while True:
        for byte in b"250-please wait\r\n":
            conn.sendall(bytes([byte]))
            time.sleep(interval)


def serve(conn: socket.socket, interval: float, drip_at: str) -> None:
    with contextlib.suppress(OSError), conn:
        if drip_at == "banner":
            drip(conn, interval)
        conn.sendall(b"220 drip.example ESMTP\r\n")
        reader = conn.makefile("rb")
        in_data = False
        for line in reader:
            if in_data:
                if line == b".\r\n":
                    drip(conn, interval)
                continue
            command = line[:4].upper()
            if command == b"DATA":
                conn.sendall(b"354 go ahead\r\n")
                in_data = True
            elif command == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            elif command == b"EHLO":
                conn.sendall(b"250-drip.example\r\n250 8BITMIME\r\n")
            else:
                conn.sendall(b"250 ok\r\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--drip-at", choices=["banner", "data"], default="data")
    args = parser.parse_args()
    listener = socket.create_server(("127.0.0.1", args.port))
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        conn, _ = listener.accept()
        threading.Thread(
            target=serve, args=(conn, args.interval, args.drip_at), daemon=True
        ).start()


if __name__ == "__main__":
    main()
