#!/usr/bin/python3
"""A stand-in for an operator's web service, for tests: serves HTTP on
127.0.0.1:PORT (GET / answers 200, GET /sick 503), first writing
"PORT INSTANCE_ID PID" from its environment to INFO_FILE, and the Unix
time it was told to stop (SIGTERM) to INFO_FILE.term. GET /count answers
how many other requests it has served.

Usage: service.py PORT INFO_FILE [--burn] [--ignore-term] [--bind ADDR]
                  [--tls CERT KEY] [--require-host HOST]
  --burn         keep one core busy (for --load-source service)
  --ignore-term  ignore SIGTERM (the agent must SIGKILL it)
  --bind ADDR    listen there instead (::1: IPv6 only)
  --tls CERT KEY serve HTTPS with this certificate
  --require-host answer 421 to a request whose Host header is not HOST
  --answer TEXT  GET / answers TEXT (a version, say) instead of "ok"
  --status CODE  GET / answers with this status (a broken version: 500)
  --exit         exit at once, code 1 (a version that does not start)
  --status-file PATH  while PATH exists, every request but GET /count gets the
                 status in it, read at each request (an instance going bad
                 while it runs)"""
import http.server
import os
import signal
import socket
import ssl
import sys
import threading
import time


SERVED = [0]
REQUIRE_HOST = [None]
ANSWER = [b"ok\n", 200]
STATUS_FILE = [None]


def status_from_file():
    """The status in --status-file's file, or None (no such file)."""
    if STATUS_FILE[0]:
        try:
            with open(STATUS_FILE[0]) as f:
                return int(f.read())
        except (OSError, ValueError):
            pass
    return None
SERVED_LOCK = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if REQUIRE_HOST[0] is not None and self.headers.get("Host") != REQUIRE_HOST[0]:
            self.send_response(421)         # Misdirected Request: not the name it serves
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/count":           # its request counter, for --service-requests
            with SERVED_LOCK:
                body = b"%d\n" % SERVED[0]
            code = 200
        else:
            with SERVED_LOCK:
                SERVED[0] += 1
            code = status_from_file() or (503 if self.path == "/sick" else ANSWER[1])
            body = b"sick\n" if code == 503 else ANSWER[0]
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


def burn():
    while True:
        pass


def stopped(info):
    try:
        with open(info + ".term.tmp", "w") as f:
            f.write("%.3f\n" % time.time())
        os.rename(info + ".term.tmp", info + ".term")
    except OSError:
        pass   # the test is over and its directory gone
    os._exit(0)


def main():
    port, info = int(sys.argv[1]), sys.argv[2]
    if "--exit" in sys.argv:
        sys.exit(1)
    if "--ignore-term" in sys.argv:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda sig, frame: stopped(info))
    if "--burn" in sys.argv:
        threading.Thread(target=burn, daemon=True).start()
    args = sys.argv
    bind = args[args.index("--bind") + 1] if "--bind" in args else "127.0.0.1"
    if "--answer" in args:
        ANSWER[0] = args[args.index("--answer") + 1].encode() + b"\n"
    if "--status" in args:
        ANSWER[1] = int(args[args.index("--status") + 1])
    if "--status-file" in args:
        STATUS_FILE[0] = args[args.index("--status-file") + 1]
    if "--require-host" in args:
        REQUIRE_HOST[0] = args[args.index("--require-host") + 1]

    class Server(http.server.ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in bind else socket.AF_INET

        def handle_error(self, request, client_address):
            # A balancer that has read enough (the status line of a 503 it
            # retries elsewhere) hangs up: nothing to say of that.
            if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                super().handle_error(request, client_address)
    srv = Server((bind, port), Handler)
    if "--tls" in args:
        i = args.index("--tls")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args[i + 1], args[i + 2])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    with open(info + ".tmp", "w") as f:
        f.write("%s %s %d\n" % (os.environ.get("ASG_SERVICE_PORT", ""),
                                os.environ.get("ASG_INSTANCE_ID", ""), os.getpid()))
    os.rename(info + ".tmp", info)
    srv.serve_forever()


if __name__ == "__main__":
    main()
