#!/usr/bin/env python3
"""A tiny HTTP application for trying the vassal runtime, in the Python 3
standard library only.

It serves on the socket it inherits with the systemd convention (fd 3,
LISTEN_FDS >= 1 and LISTEN_PID equal to its own pid), which is how a vassal
hands its http-socket to its workers; otherwise it listens on the address
given as its first argument (default 127.0.0.1:8080). Every request gets

    hello from NAME pid PID

where NAME is the NAME environment variable ("hello" when unset). SIGTERM
stops it once the requests it accepted are answered.
"""

import http.server
import os
import signal
import socket
import sys
import threading

LISTEN_FDS_START = 3
NAME = os.environ.get("NAME") or "hello"


class Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        body = f"hello from {NAME} pid {os.getpid()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        peer = self.client_address[0] if self.client_address else "-"  # "" on unix sockets
        sys.stderr.write(f"hello.py[{os.getpid()}] {peer} {fmt % args}\n")


def inherited_socket():
    """The socket at fd 3 when LISTEN_FDS and LISTEN_PID name this process."""
    try:
        n = int(os.environ.get("LISTEN_FDS", "0"))
        pid = int(os.environ.get("LISTEN_PID", "0"))
    except ValueError:
        return None
    if n < 1 or pid != os.getpid():
        return None
    sock = socket.socket(fileno=LISTEN_FDS_START)
    # Other workers may have switched the shared socket to non-blocking.
    sock.setblocking(True)
    return sock


def main():
    sock = inherited_socket()
    if sock is not None:
        server = http.server.ThreadingHTTPServer(sock.getsockname(), Hello, bind_and_activate=False)
        server.socket.close()
        server.socket = sock
    else:
        host, _, port = (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8080").rpartition(":")
        server = http.server.ThreadingHTTPServer((host or "127.0.0.1", int(port)), Hello)
    # On SIGTERM finish what was accepted: serve_forever stops between two
    # requests (shutdown must run on another thread) and server_close waits
    # for the handler threads, so no accepted connection is dropped.
    server.daemon_threads = False
    server.block_on_close = True

    def terminate(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, terminate)
    sys.stderr.write(f"hello.py[{os.getpid()}] serving on {server.socket.getsockname()}\n")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
