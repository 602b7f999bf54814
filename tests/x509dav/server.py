#!/usr/bin/env python3
"""An HTTPS WebDAV server for cta-data's x509 tests: wsgidav served by cheroot, on loopback.

The TLS side is Python's ssl module (OpenSSL 3): a client certificate is required, verified
against --client-ca, and RFC 3820 proxy certificates are accepted (OpenSSL 3 ignores the old
OPENSSL_ALLOW_PROXY_CERTS variable: the verify flag X509_V_FLAG_ALLOW_PROXY_CERTS is set on the
context here). A proxy sent without the user certificate that signed it is refused ("unable to
get local issuer certificate"), as on a grid storage door.

Access log (--access-log), one line per request:
    METHOD "PATH" STATUS verify=SUCCESS s_dn="<client subject>" i_dn="<client issuer>"
and one line per refused handshake:
    TLS "-" refused reason="<OpenSSL's words>"
The subject is the one the server authenticated: for a proxy, the proxy's own subject (the user
subject plus one CN).

Once listening it prints "listening on 127.0.0.1:PORT" on standard output (PORT 0 picks one).
"""

import argparse
import logging
import os
import ssl
import sys
import threading

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter
from wsgidav.wsgidav_app import WsgiDAVApp


class Log:
    """An append-only log file shared by the worker threads."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.f = open(path, "a", buffering=1, encoding="utf-8")

    def write(self, line):
        with self.lock:
            self.f.write(line + "\n")


def quote(s):
    return str(s).replace("\\", "\\\\").replace('"', '\\"')


class AccessLog:
    """WSGI middleware: one line per request with the client certificate's subject."""

    def __init__(self, app, log):
        self.app = app
        self.log = log

    def __call__(self, environ, start_response):
        logged = []

        def sr(status, headers, exc_info=None):
            # Logged before the answer leaves: a client that has its answer finds the line.
            if not logged:
                logged.append(True)
                self.line(environ, status.split(" ", 1)[0])
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, sr)
        except BaseException:
            if not logged:
                self.line(environ, "500")
            raise

    def line(self, environ, status):
        self.log.write(
            '%s "%s" %s verify=%s s_dn="%s" i_dn="%s"'
            % (
                environ.get("REQUEST_METHOD"),
                quote(environ.get("PATH_INFO", "")),
                status,
                environ.get("SSL_CLIENT_VERIFY", "NONE"),
                quote(environ.get("SSL_CLIENT_S_DN", "")),
                quote(environ.get("SSL_CLIENT_I_DN", "")),
            )
        )


class LoggingAdapter(BuiltinSSLAdapter):
    """cheroot's ssl adapter that logs refused handshakes with OpenSSL's reason."""

    log = None

    def wrap(self, sock):
        try:
            return super().wrap(sock)
        except Exception as e:  # noqa: BLE001 - logged, then handed back to cheroot
            cause = e.__cause__ or e
            reason = getattr(cause, "verify_message", None) or getattr(cause, "reason", None) or cause
            if self.log is not None:
                self.log.write('TLS "-" refused reason="%s"' % quote(reason))
            raise


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True, help="the served directory")
    ap.add_argument("--cert", required=True, help="server certificate (PEM)")
    ap.add_argument("--key", required=True, help="server key (PEM)")
    ap.add_argument("--client-ca", required=True, help="CA certificates trusted for clients (PEM)")
    ap.add_argument("--access-log", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--no-proxies", action="store_true", help="refuse proxy certificates")
    args = ap.parse_args()

    log = Log(args.access_log)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    context.load_verify_locations(cafile=args.client_ca)
    context.verify_mode = ssl.CERT_REQUIRED
    if not args.no_proxies:
        context.verify_flags |= ssl.VERIFY_ALLOW_PROXY_CERTS

    config = {
        "provider_mapping": {"/": os.path.abspath(args.root)},
        "simple_dc": {"user_mapping": {"*": True}},  # TLS authenticates; no HTTP auth
        "http_authenticator": {"accept_basic": False, "accept_digest": False, "default_to_digest": False},
        "verbose": 1,
        "logging": {"enable_loggers": []},
        "dir_browser": {"enable": False},
        "lock_storage": True,
        "property_manager": True,
    }
    app = AccessLog(WsgiDAVApp(config), log)
    server = wsgi.Server(("127.0.0.1", args.port), app, numthreads=16, server_name="x509dav")
    adapter = LoggingAdapter(args.cert, args.key)
    adapter.context = context
    adapter.log = log
    server.ssl_adapter = adapter
    server.prepare()
    host, port = server.bind_addr[:2]
    print("listening on %s:%d" % (host, port), flush=True)
    try:
        server.serve()
    finally:
        server.stop()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    main()
