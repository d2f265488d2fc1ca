"""tlsproxy.py - a TLS proxy in front of a real dedup-server, for the
end-to-end tests that stand for an untrusted or changing server: it
passes each request on and may answer, rewrite or act first.

    serve(portfile, upstream, upca, cert, key, handler=None)

listens on 127.0.0.1 (a free port, written to `portfile` once it
listens) with the certificate `cert`/`key`, and answers every GET, POST
and DELETE with handler(method, path, body, headers, forward), which
returns (status, content_type, data); forward(method, path, body,
headers) passes a request to `upstream` (checked against the CA file
`upca`) and returns the same triple. Without a handler every request is
passed on as it came. Only the Authorization and Content-Type headers go
through.
"""
import http.client
import http.server
import os
import ssl
import urllib.parse


def serve(portfile, upstream, upca, cert, key, handler=None):
    up = urllib.parse.urlparse(upstream)
    upctx = ssl.create_default_context(cafile=upca)
    upctx.check_hostname = False

    def forward(method, path, body=None, headers=None):
        c = http.client.HTTPSConnection(up.hostname, up.port, context=upctx)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data, status = r.read(), r.status
        ctype = r.getheader("Content-Type", "application/octet-stream")
        c.close()
        return status, ctype, data

    def passing(method, path, body, headers, fwd):
        return fwd(method, path, body, headers)

    handle = handler or passing

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def one(self, method):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else None
            hdr = {k: v for k, v in self.headers.items()
                   if k.lower() in ("authorization", "content-type")}
            status, ctype, data = handle(method, self.path, body, hdr,
                                         forward)
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self.one("GET")

        def do_POST(self):
            self.one("POST")

        def do_DELETE(self):
            self.one("DELETE")

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(portfile + ".tmp", portfile)
    srv.serve_forever()
