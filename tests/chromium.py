"""Real headless Chromium (Debian `chromium`) driven over the DevTools protocol, for the tests of the HTML reports:
the `browser` fixture, `open_page`, `page_errors`. The harness installs what it lacks."""

import base64
import json
import re
import shutil
import subprocess
import sys
import time

import pytest

HEADLESS = (  # a quiet headless browser: no sandbox (root in CI), no GPU, nothing fetched from the network
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
FLAGS = [*HEADLESS, "--remote-debugging-port=0"]


def ensure_chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        subprocess.run(["bash", "-c", "apt-get update -qq && apt-get install -y -qq chromium"], check=True, timeout=900)
        found = shutil.which("chromium")
    assert found, "chromium could not be installed"
    return found


def ensure_websockets():
    try:
        import websockets.sync.client  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "websockets>=12"], check=True, timeout=300)
    from websockets.sync.client import connect

    return connect


class DevTools:
    """A minimal DevTools-protocol client on one page session (flattened target attachment)."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id, self.events, self.session = 0, [], None

    def call(self, method: str, timeout: float = 30, **params):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if self.session:
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        deadline = time.time() + timeout
        while time.time() < deadline:
            reply = json.loads(self.ws.recv(timeout=deadline - time.time()))
            if reply.get("id") == self.next_id:
                assert "error" not in reply, reply
                return reply["result"]
            self.events.append(reply)
        raise TimeoutError(method)

    def wait_for(self, method: str, timeout: float = 30) -> dict:
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.time() + timeout
        while time.time() < deadline:
            event = json.loads(self.ws.recv(timeout=deadline - time.time()))
            self.events.append(event)
            if event.get("method") == method:
                return event
        raise TimeoutError(method)

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")


@pytest.fixture
def browser(tmp_path):
    exe = ensure_chromium()
    connect = ensure_websockets()
    log = tmp_path / "chromium.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [exe, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        found, deadline = None, time.time() + 60
        while found is None and time.time() < deadline:
            found = re.search(r"DevTools listening on (ws://\S+)", log.read_text())
            assert proc.poll() is None, f"chromium exited: {log.read_text()[-2000:]}"
            time.sleep(0.1)
        assert found, "chromium did not announce its DevTools endpoint"
        with connect(found.group(1), max_size=None, open_timeout=30) as ws:
            yield DevTools(ws)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def open_page(browser: DevTools, path) -> None:
    target = browser.call("Target.createTarget", url="about:blank")["targetId"]
    browser.session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    for domain in ("Page", "Runtime", "Log"):
        browser.call(f"{domain}.enable")
    browser.call("Page.navigate", url=path.resolve().as_uri())
    browser.wait_for("Page.loadEventFired")


def page_errors(browser: DevTools) -> list[dict]:
    browser.evaluate("1")  # flush: any late console event arrives before this reply
    return [
        e
        for e in browser.events
        if e.get("method") == "Runtime.exceptionThrown"
        or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
    ]


# What is cut off or drawn over: SVG text outside its <svg> (an inline svg clips it) or on other text of the same
# chart, HTML boxes whose content is wider than they are (scrollWidth > clientWidth), and a page wider than the
# window. Rectangles in page coordinates, so rotated text counts too.
LAYOUT_PROBLEMS = """JSON.stringify((function () {
  var out = {outside: [], overlapping: [], overflowing: []};
  document.querySelectorAll('svg').forEach(function (svg) {
    var box = svg.getBoundingClientRect(), seen = [];
    svg.querySelectorAll('text').forEach(function (t) {
      var r = t.getBoundingClientRect();
      if (r.left < box.left - 0.5 || r.top < box.top - 0.5 || r.right > box.right + 0.5 || r.bottom > box.bottom + 0.5)
        out.outside.push(t.textContent);
      seen.forEach(function (o) {
        if (r.left < o.r.right && o.r.left < r.right && r.top < o.r.bottom && o.r.top < r.bottom)
          out.overlapping.push([o.text, t.textContent]);
      });
      seen.push({r: r, text: t.textContent});
    });
  });
  document.querySelectorAll('td, th, summary, p, h1, h2, h3, div').forEach(function (el) {
    if (el.scrollWidth > el.clientWidth + 1) out.overflowing.push(el.tagName + ': ' + el.textContent.slice(0, 80));
  });
  if (document.documentElement.scrollWidth > window.innerWidth) out.overflowing.push('the page is too wide');
  return out;
})())"""


def layout_problems(browser: DevTools) -> dict[str, list]:
    """Clipped or overlapping text on the open page, by kind (each list empty when the layout is sound)."""
    return json.loads(browser.evaluate(LAYOUT_PROBLEMS))


def screenshot(browser: DevTools, path, selector: str | None = None) -> bytes:
    """A PNG of one element (the whole page by default), written to `path` to look at."""
    box = json.loads(
        browser.evaluate(
            "JSON.stringify((function(){ var e = "
            + (f"document.querySelector({json.dumps(selector)})" if selector else "null")
            + "; if (!e) { return {x: 0, y: 0, width: document.documentElement.scrollWidth,"
            " height: document.documentElement.scrollHeight}; }"
            " var r = e.getBoundingClientRect();"
            " return {x: r.x + window.scrollX, y: r.y + window.scrollY, width: r.width, height: r.height}; })())"
        )
    )
    shot = browser.call("Page.captureScreenshot", format="png", clip={**box, "scale": 1}, captureBeyondViewport=True)
    png = base64.b64decode(shot["data"])
    path.write_bytes(png)
    return png
