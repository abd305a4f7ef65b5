"""Headless Debian chromium driven over the DevTools protocol (with
python3-websocket): load a page, evaluate JavaScript, screenshot. Only
loopback addresses are ever loaded; background networking is off."""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

import websocket

from harness import STARTED, stop_process, wait_for


class Browser:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="asg-chromium-")
        self.proc = subprocess.Popen(
            ["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-default-apps", "--disable-extensions",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
             "--user-data-dir=" + self.dir, "--window-size=1400,1000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        STARTED.add(self.proc.pid)
        port_file = os.path.join(self.dir, "DevToolsActivePort")
        wait_for(lambda: os.path.exists(port_file) and open(port_file).read().strip(), 30,
                 "chromium's DevTools port")
        port = int(open(port_file).read().split()[0])
        pages = json.load(urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port, timeout=10))
        page = [p for p in pages if p["type"] == "page"][0]
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError("%s: %s" % (method, msg["error"]))
                return msg["result"]

    def goto(self, url, lands_on=None):
        """Loads url and returns once the page it ends on (path lands_on,
        by default url's own) has loaded: a login link's page stores the
        session's key and then moves itself to "/", and a script run in
        between would find the page gone."""
        assert url.startswith("http://127.0.0.1:"), url
        self.call("Page.enable")
        self.call("Page.navigate", url=url)
        path = lands_on or urllib.parse.urlsplit(url).path
        wait_for(lambda: self.loaded(path), 15, "the page at %s to load" % path)

    def login(self, link):
        """Follows the operator's one-time link to the dashboard."""
        self.goto(link, lands_on="/")

    def loaded(self, path):
        try:
            return self.js("location.pathname + ' ' + document.readyState") == path + " complete"
        except RuntimeError as e:
            # Asked while the page navigates: not loaded yet.
            if "navigated or closed" in str(e) or "Cannot find context" in str(e):
                return False
            raise

    def js(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError("js: %s" % r["exceptionDetails"])
        return r["result"].get("value")

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)
