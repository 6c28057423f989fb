"""`forgeml serve --workers N`: time to ready, memory per process, and how requests spread over the workers.

The measurement behind the `--workers` numbers in docs/serving-scale-out.md:

1. trains a small MLP on bundled:default (2 epochs) and exports it, so start-up does not include exporting;
2. starts `forgeml serve RUN --workers N` on a free port and polls `/readyz` until it answers 200;
3. reads the resident memory (VmRSS) of the parent process and of each worker;
4. sends 40 concurrent one-row predict requests, then scrapes `/metrics` several times: each scrape is answered by
   one worker, so the distinct predict counters are the workers' own counts;
5. stops the server with Ctrl-C (SIGINT) and times the shutdown.

    .venv/bin/python examples/serve_workers.py [--workers 2] [--requests 40]
"""
from __future__ import annotations

import argparse
import json
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from forgeml.processes import process_tree, rss_mb


def _name(pid: int) -> str:
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return " ".join(a.decode() for a in argv if a)[-60:]


def _get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""


def _predict(url: str, row: dict) -> int:
    req = urllib.request.Request(url, data=json.dumps({"instances": [row]}).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--requests", type=int, default=40)
    args = ap.parse_args(argv)
    from forgeml import api

    with tempfile.TemporaryDirectory() as tmp:
        run = api.train({"name": "workers", "runs_dir": tmp, "tracking": {"uri": "none"},
                         "data": {"source": "bundled:default"}, "model": {"name": "mlp"}, "train": {"epochs": 2}},
                        quiet=True)
        api.export(run.run_dir)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        forgeml = str(Path(sys.executable).with_name("forgeml"))
        tic = time.perf_counter()
        server = subprocess.Popen([forgeml, "serve", str(run.run_dir), "--workers", str(args.workers), "--port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            while True:
                if server.poll() is not None:
                    raise SystemExit(f"the server exited: {server.stderr.read()[-2000:]}")
                try:
                    if _get(f"{base}/readyz", timeout=1)[0] == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.1)
            ready = time.perf_counter() - tic
            workers = process_tree(server.pid)[1:]
            print(f"forgeml serve RUN --workers {args.workers}: /readyz 200 after {ready:.1f} s")
            print(f"RSS: parent {rss_mb(server.pid):.0f} MB; child processes: " +
                  ", ".join(f"{rss_mb(p):.0f} MB ({_name(p)})" for p in workers))
            row = {"student": "Yes", "balance": 1500, "income": 20000}
            with ThreadPoolExecutor(args.requests) as pool:
                codes = list(pool.map(lambda _: _predict(f"{base}/v1/models/workers/predict", row), range(args.requests)))
            print(f"{args.requests} concurrent predict requests: status codes {sorted(set(codes))}")
            seen = []
            for _ in range(12):
                text = _get(f"{base}/metrics")[1]
                m = re.search(r'forgeml_requests_total\{[^}]*route="/v1/models/\{name\}/predict"[^}]*status="200"[^}]*\} (\S+)', text)
                seen.append(float(m.group(1)) if m else 0.0)
            print("predict requests counted by the worker that answered each of 12 /metrics scrapes: "
                  + ", ".join(f"{v:g}" for v in seen))
            print(f"distinct counts: {sorted(set(seen))} (sum {sum(set(seen)):g})")
        finally:
            tic = time.perf_counter()
            server.send_signal(signal.SIGINT)
            try:
                code = server.wait(timeout=60)
                print(f"Ctrl-C (SIGINT): exited with {code} after {time.perf_counter() - tic:.1f} s")
            except subprocess.TimeoutExpired:
                server.kill()
                print("the server did not stop within 60 s; killed")


if __name__ == "__main__":
    main()
