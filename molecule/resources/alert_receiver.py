"""The lab's alert receiver: a webhook that records what Alertmanager sends.

It runs in the lab's client container (outside the cluster), started by
lab_create.yml. Alertmanager posts its webhook JSON to POST /alerts; each
notification is kept in memory and appended to a JSON-lines file with the
time it arrived. GET /alerts returns them all, oldest first:

    [{"received": <unix time>, "status": "firing", "alerts": [...], ...}, ...]

Standard library only; for the lab and its tests, not for production.
"""

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1024 * 1024
LOCK = threading.Lock()
RECEIVED = []


class Handler(BaseHTTPRequestHandler):
    log_file = None

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        if self.path.split("?")[0] != "/alerts":
            self._send(404, {"error": "not found"})
            return
        with LOCK:
            self._send(200, list(RECEIVED))

    def do_POST(self):  # noqa: N802
        if self.path.split("?")[0] != "/alerts":
            self._send(404, {"error": "not found"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY:
            self._send(400, {"error": "a JSON body of at most 1 MiB is expected"})
            return
        try:
            payload = json.loads(self.rfile.read(length))
        except ValueError:
            self._send(400, {"error": "the body is not JSON"})
            return
        if not isinstance(payload, dict):
            self._send(400, {"error": "the body is not a JSON object"})
            return
        payload["received"] = time.time()
        with LOCK:
            RECEIVED.append(payload)
            if self.log_file:
                with open(self.log_file, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(payload) + "\n")
        self._send(200, {"ok": True})

    def log_message(self, *args):
        pass


def notices(since, name=None):
    """[(received, alertname, summary)] of the alerts received after
    ``since`` (Unix time), oldest first; only those named ``name`` if given."""
    with LOCK:
        notes = list(RECEIVED)
    return [(note["received"], alert["labels"].get("alertname"), alert.get("annotations", {}).get("summary", ""))
            for note in notes if note["received"] >= since for alert in note.get("alerts", [])
            if name is None or alert["labels"].get("alertname") == name]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=9099)
    parser.add_argument("--log", default="/var/log/distweb-alerts.jsonl")
    args = parser.parse_args()
    Handler.log_file = args.log
    ThreadingHTTPServer((args.address, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
