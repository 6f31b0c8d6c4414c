#!/usr/bin/python3
"""Opens an HTML page in headless Chromium and checks it as a reader's browser shows it.

usage: browser_check.py CHROMIUM PAGE.html SCREENSHOT.png

Talks to Chromium over the DevTools protocol on a pipe (--remote-debugging-pipe: commands on fd 3,
replies on fd 4, each message a JSON text ended by a NUL byte), so only the standard library is
needed. Fails (exit 1, with the reasons) when an image does not load (complete and with a natural
width), a resource fails to load, or the console shows an error or an uncaught exception. Writes a
full-page screenshot. Prints "images N, console errors 0, screenshot W x H".
"""
import base64
import fcntl
import json
import os
import select
import subprocess
import sys
import tempfile
import time

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--remote-debugging-pipe"]
TIMEOUT = 90.0


class Browser:
    def __init__(self, exe, profile):
        to_chrome_r, to_chrome_w = os.pipe()
        from_chrome_r, from_chrome_w = os.pipe()
        # copies above fd 10, moved to fds 3 and 4 in the child
        hi_r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
        hi_w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)

        def child():
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        self.proc = subprocess.Popen([exe] + FLAGS + ["--user-data-dir=" + profile, "about:blank"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, close_fds=False, preexec_fn=child)
        for fd in (to_chrome_r, from_chrome_w, hi_r, hi_w):
            os.close(fd)
        self.w, self.r = to_chrome_w, from_chrome_r
        self.buf = b""
        self.next_id = 0
        self.events = []
        self.deadline = time.monotonic() + TIMEOUT

    def _read_message(self):
        while b"\0" not in self.buf:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from Chromium within %.0f s" % TIMEOUT)
            ready, _, _ = select.select([self.r], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.r, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe (exit status %s)" % self.proc.poll())
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method, params=None, session=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        while True:
            m = self._read_message()
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError("%s: %s" % (method, m["error"]))
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, name):
        for i, e in enumerate(self.events):
            if e.get("method") == name:
                return self.events.pop(i)
        while True:
            m = self._read_message()
            if m.get("method") == name:
                return m
            self.events.append(m)

    def close(self):
        try:
            self.send("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    exe, page, shot = sys.argv[1:]
    url = "file://" + os.path.abspath(page)
    problems = []
    with tempfile.TemporaryDirectory() as profile:
        b = Browser(exe, profile)
        try:
            target = b.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            s = b.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for dom in ("Page", "Runtime", "Log", "Network"):
                b.send(dom + ".enable", session=s)
            b.send("Emulation.setDeviceMetricsOverride",
                   {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=s)
            b.send("Page.navigate", {"url": url}, session=s)
            b.wait_event("Page.loadEventFired")
            # every <img> (PNG and SVG) decoded, with a size
            check = ("Array.from(document.images).map(i => [i.getAttribute('src'), "
                     "i.complete && i.naturalWidth > 0 && i.naturalHeight > 0])")
            imgs = b.send("Runtime.evaluate", {"expression": check, "returnByValue": True},
                          session=s)["result"]["value"]
            broken = [src for src, ok in imgs if not ok]
            if not imgs:
                problems.append("the page has no images")
            for src in broken:
                problems.append("image did not load: %s" % src)
            title = b.send("Runtime.evaluate", {"expression": "document.title", "returnByValue": True},
                           session=s)["result"].get("value", "")
            if not title:
                problems.append("the page has no title")
            metrics = b.send("Page.getLayoutMetrics", session=s)
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            w, h = int(size["width"]), min(int(size["height"]), 8000)  # our PNG reader takes 8192 a side
            png = b.send("Page.captureScreenshot",
                         {"format": "png", "captureBeyondViewport": True,
                          "clip": {"x": 0, "y": 0, "width": w, "height": h, "scale": 1}}, session=s)["data"]
            with open(shot, "wb") as f:
                f.write(base64.b64decode(png))
            # the events gathered meanwhile
            while True:
                r, _, _ = select.select([b.r], [], [], 0.3)
                if not r:
                    break
                b.events.append(b._read_message())
            errors = 0
            for e in b.events:
                m, p = e.get("method"), e.get("params", {})
                if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                    errors += 1
                    problems.append("console %s: %s" % (p.get("type"), [a.get("value") for a in p.get("args", [])]))
                elif m == "Runtime.exceptionThrown":
                    errors += 1
                    problems.append("uncaught exception: %s" % p.get("exceptionDetails", {}).get("text"))
                elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                    errors += 1
                    entry = p["entry"]
                    problems.append("console error (%s): %s %s" % (entry.get("source"), entry.get("text"),
                                                                   entry.get("url", "")))
                elif m == "Network.loadingFailed":
                    errors += 1
                    problems.append("failed to load %s: %s" % (p.get("requestId"), p.get("errorText")))
            print("images %d, console errors %d, screenshot %d x %d" % (len(imgs), errors, w, h))
        finally:
            b.close()
    for p in problems:
        print("FAIL " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
