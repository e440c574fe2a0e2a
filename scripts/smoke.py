#!/usr/bin/env python3
"""Smoke test of the README's main command, run by scripts/test.sh.

Starts `scripts/dev-up.sh` from nothing -- a fresh database, a fresh broker data
directory, ports of its own -- waits for the API, then calls every operation that
`/openapi.json` documents once, checking the documented status and, for writes, that
the pipeline applied them (`X-Read-Your-Writes: applied`). Fails if the document lists
an operation this script did not call. Then fuzzes the same stack with schemathesis
against the served document (bounded: 40 examples per operation, fixed seed; no 5xx,
every answer documented and matching its schema, invalid input refused).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def psql(sql):
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc", sql], check=True,
                   stdout=subprocess.DEVNULL)


class Api:
    def __init__(self, base):
        self.base = base
        self.called = set()

    def call(self, method, path, status, key=None, body=None, query="", applied=False, route=None):
        """One request; checks the status (and the applied header for writes). `route` is
        the documented path template, when `path` fills one in."""
        self.called.add((method.lower(), route or path))
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path + query, data=data, method=method)
        if key:
            request.add_header("X-App-Key", key)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                got, headers, text = response.status, response.headers, response.read().decode()
        except urllib.error.HTTPError as error:
            got, headers, text = error.code, error.headers, error.read().decode()
        if got != status:
            raise AssertionError(f"{method} {path}{query}: {got} (expected {status}): {text[:300]}")
        if applied and headers.get("X-Read-Your-Writes") != "applied":
            raise AssertionError(f"{method} {path}: not applied by the pipeline ({headers.get('X-Read-Your-Writes')})")
        print(f"smoke: {method} {path}{query} -> {got}", flush=True)
        return text


def wait_healthy(base, dev_up, deadline):
    while time.time() < deadline:
        if dev_up.poll() is not None:
            raise AssertionError(f"dev-up.sh exited with {dev_up.returncode}")
        try:
            with urllib.request.urlopen(base + "/health", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    raise AssertionError("the API did not become healthy")


def exercise(api):
    ivan, nico = "abc123", "abc124"
    now_ms = int(time.time() * 1000)
    api.call("GET", "/livez", 200)
    api.call("GET", "/readyz", 200)
    api.call("GET", "/health", 200)
    api.call("GET", "/metrics", 200)
    document = json.loads(api.call("GET", "/openapi.json", 200))
    api.call("GET", "/me", 200, key=ivan)
    api.call("POST", "/post", 200, key=ivan, body={"type": "post", "content": "smoke"}, applied=True)
    api.call("POST", "/follow", 200, key=nico, body={"follow": "ivan"}, applied=True)
    api.call("POST", "/activity", 200, key=nico, body={"verb": "like", "object": "post:1"}, applied=True)
    api.call("POST", "/unfollow", 200, key=nico, body={"unfollow": "ivan"}, applied=True)
    # feed-me, then a delete.
    api.call("POST", "/activity", 200, key=nico, body={"verb": "waved", "object": "null", "target": "ivan"}, applied=True)
    api.call("POST", "/feed/ivan", 200, key=ivan, body={"follow": "nico"}, applied=True, route="/feed/{username}")
    api.call("GET", "/feed/nico", 200, key=ivan, query="?page=1", route="/feed/{username}")
    api.call("GET", "/feed/ivan/friends", 200, key=ivan, route="/feed/{username}/friends")
    api.call("POST", "/post", 200, key=ivan, body={"type": "photo", "content": "gone soon"}, applied=True)
    api.call("DELETE", "/post/photo/1", 200, key=ivan, applied=True, route="/post/{type}/{id}")
    api.call("GET", "/feed/my", 200, key=ivan)
    api.call("GET", "/feed/friends", 200, key=nico)
    event = {"component": "smoke", "data": {"ok": True}, "email": "smoke@example.com", "environment": "test",
             "message": "hello"}
    api.call("POST", "/events", 201, body=event, applied=True)
    api.call("GET", "/events", 200, query="?component=smoke")
    api.call("POST", "/analytics", 204, query=f"?timestamp={now_ms}&user=smoke&event=click", applied=True)
    api.call("GET", "/analytics", 200, query=f"?timestamp={now_ms}")
    documented = {(method, path) for path, item in document["paths"].items() for method in item
                  if method in ("get", "post", "put", "patch", "delete")}
    missing = documented - api.called
    if missing:
        raise AssertionError(f"documented operations not exercised: {sorted(missing)}")


# Checks that must hold for any input. Not included: `ignored_auth` (a missing key is
# a 400, as the reference answers, not 401) and `positive_data_acceptance` (some valid
# looking input is refused for reasons a schema cannot state: the analytics time window
# is relative to now, JSON strings with lone surrogates are not Unicode).
FUZZ_CHECKS = ",".join([
    "not_a_server_error", "status_code_conformance", "content_type_conformance",
    "response_headers_conformance", "response_schema_conformance", "negative_data_rejection",
])


def fuzz(base):
    if shutil.which("schemathesis") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "schemathesis"], check=True)
    command = ["schemathesis", "run", base + "/openapi.json", "-H", "X-App-Key: abc123", "--checks", FUZZ_CHECKS,
               "-n", os.environ.get("FUZZ_EXAMPLES", "40"), "--seed", os.environ.get("FUZZ_SEED", "1")]
    result = subprocess.run(command, timeout=600, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    summary = [line for line in result.stdout.splitlines() if "generated" in line or "ST" in line]
    print("smoke: schemathesis: " + "; ".join(s.strip() for s in summary[-3:]), flush=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-8000:])
        raise AssertionError("schemathesis found failures")


def main():
    run_dir = tempfile.mkdtemp(prefix="feed-smoke-")
    smoke_id = uuid.uuid4().hex[:10]
    database = f"feed_smoke_{smoke_id}"
    api_port = free_port()
    env = dict(os.environ,
               RUN_DIR=run_dir,
               KAFKA_PORT=str(free_port()),
               DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{database}",
               REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"),
               REDIS_KEY_PREFIX=f"smoke:{smoke_id}:",
               LISTEN_ADDR=f"127.0.0.1:{api_port}",
               WRITER_METRICS_ADDR=f"127.0.0.1:{free_port()}",
               FANOUT_METRICS_ADDR=f"127.0.0.1:{free_port()}",
               BUILD_PROFILE=os.environ.get("BUILD_PROFILE", "dev"),
               RUST_LOG="warn")
    env.pop("KAFKA_BROKERS", None)
    log_path = os.path.join(run_dir, "dev-up.log")
    with open(log_path, "w") as log:
        dev_up = subprocess.Popen(["bash", "scripts/dev-up.sh"], cwd=ROOT, env=env, stdout=log, stderr=log,
                                  start_new_session=True)
    ok = False
    try:
        base = f"http://127.0.0.1:{api_port}"
        wait_healthy(base, dev_up, time.time() + 600)
        exercise(Api(base))
        fuzz(base)
        ok = True
    finally:
        os.killpg(dev_up.pid, signal.SIGTERM)
        try:
            dev_up.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(dev_up.pid, signal.SIGKILL)
        # dev-up leaves the broker running on purpose; this one was the smoke test's.
        pid_file = os.path.join(run_dir, "tansu", "tansu.pid")
        if os.path.exists(pid_file):
            with open(pid_file) as f:
                try:
                    os.kill(int(f.read().strip()), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
        if not ok:
            with open(log_path) as f:
                sys.stderr.write(f.read()[-5000:])
        psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        shutil.rmtree(run_dir, ignore_errors=True)
    print("smoke: every documented operation answered as documented")


if __name__ == "__main__":
    main()
