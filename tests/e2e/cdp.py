"""A headless Chromium driven over the DevTools protocol, for the page tests
(t0870 status page, t0930 replication table, t0940 snapshot browser).

The protocol runs over --remote-debugging-pipe (fds 3 and 4), so no port is
opened. Every wait is bounded by one deadline given at start; running past
it raises SystemExit with what was being waited for. The profile lives
under $T, the test's temporary directory.

    with Browser(chromium, seconds=40, log=path) as b:
        s = b.page("Runtime.enable", "Log.enable")
        b.call("Page.navigate", {"url": url}, s)
        b.wait_for("document.body.dataset.state === 'ready'", s, "the page")
"""
import json
import os
import subprocess
import tempfile
import time


class Browser:
    def __init__(self, chromium, seconds, log=None):
        to_c, from_us = os.pipe()
        to_us, from_c = os.pipe()

        def child_fds():
            # fds 3 and 4 are the pipe's ends Chromium expects
            a, b = os.dup(to_c), os.dup(from_c)
            os.dup2(a, 3)
            os.dup2(b, 4)

        profile = tempfile.mkdtemp(dir=os.environ["T"])
        err = open(log, "ab") if log else subprocess.DEVNULL
        self.p = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu",
             "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync",
             "--disable-extensions", "--disable-dev-shm-usage",
             "--ignore-certificate-errors", "--user-data-dir=" + profile,
             "--remote-debugging-pipe", "--window-size=1280,800", "about:blank"],
            preexec_fn=child_fds, pass_fds=(3, 4),
            stdout=subprocess.DEVNULL, stderr=err)
        os.close(to_c)
        os.close(from_c)
        self.wr = os.fdopen(from_us, "wb")
        self.rd = os.fdopen(to_us, "rb")
        self.deadline = time.time() + seconds
        self.seq = 0
        self.events = []
        self.buf = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _read(self):
        while b"\0" not in self.buf:
            if time.time() > self.deadline:
                raise SystemExit("chromium: no answer in time")
            chunk = os.read(self.rd.fileno(), 65536)
            if not chunk:
                raise SystemExit("chromium closed the pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, session=None):
        """Sends one command and returns its result; events that arrive
        meanwhile are kept in self.events."""
        self.seq += 1
        m = {"id": self.seq, "method": method, "params": params or {}}
        if session:
            m["sessionId"] = session
        self.wr.write(json.dumps(m).encode() + b"\0")
        self.wr.flush()
        while True:
            r = self._read()
            if r.get("id") == self.seq:
                if "error" in r:
                    raise SystemExit("%s: %s" % (method, r["error"]))
                return r["result"]
            self.events.append(r)

    def page(self, *domains):
        """Opens a blank tab, enables the given domains, returns its session."""
        tid = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        s = self.call("Target.attachToTarget", {"targetId": tid, "flatten": True})["sessionId"]
        for d in domains:
            self.call(d, {}, s)
        return s

    def js(self, expr, session):
        """The value of a page expression (promises awaited)."""
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True,
                                           "awaitPromise": True}, session)
        return r["result"].get("value")

    def wait_for(self, expr, session, what):
        while time.time() < self.deadline:
            if self.js(expr, session):
                return True
            time.sleep(0.1)
        raise SystemExit("timed out waiting for " + what)

    def events_of(self, method):
        return [e["params"] for e in self.events if e.get("method") == method]

    def log_errors(self):
        """Texts of the browser log's error entries (failed loads, CSP, ...)."""
        return [p["entry"]["text"] for p in self.events_of("Log.entryAdded")
                if p["entry"]["level"] == "error"]

    def close(self):
        try:
            self.call("Browser.close")
        except BaseException:
            pass
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
