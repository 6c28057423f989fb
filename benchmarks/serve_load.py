"""Load test of `forgeml serve` against a naive FastAPI + eager PyTorch endpoint, both on 127.0.0.1.

Each server runs in its own process; the load comes from this process over keep-alive HTTP/1.1 connections (a small
asyncio client: httpx would spend more CPU per request than the servers and measure itself). For concurrency 1, 8
and 32: a bounded number of requests (and time), each one row of bundled:default (ISLR Default: balance, income,
student). Reported: throughput, client-side p50/p95/p99, and forgeml's server-side time from its Server-Timing header.

Targets (issue 5): >= 3x the baseline's throughput at concurrency 32 with p95 no worse; server-side p50 <= 2 ms.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, table  # noqa: E402

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, path: str, proc, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                if b" 200 " in s.recv(200):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not become ready")


async def _request(reader, writer, path: str, body: bytes) -> tuple[int, float | None]:
    writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    await reader.readexactly(int(headers["content-length"]))
    timing = headers.get("server-timing")
    return status, float(timing.split("dur=")[1]) if timing else None


async def load(port: int, path: str, bodies: list[bytes], concurrency: int, max_seconds: float) -> dict:
    latencies, server_ms, errors = [], [], 0
    next_i = 0
    deadline = time.perf_counter() + max_seconds

    async def worker():
        nonlocal next_i, errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while next_i < len(bodies) and time.perf_counter() < deadline:
            body = bodies[next_i]
            next_i += 1
            tic = time.perf_counter()
            status, server = await _request(reader, writer, path, body)
            latencies.append(time.perf_counter() - tic)
            errors += status != 200
            if server is not None:
                server_ms.append(server)
        writer.close()

    tic = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - tic
    ms = np.asarray(latencies) * 1e3
    return {"requests": len(latencies), "errors": errors, "throughput": len(latencies) / wall,
            "p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)), "p99": float(np.percentile(ms, 99)),
            "server_p50": float(np.percentile(server_ms, 50)) if server_ms else None}


def bodies_for(n: int, seed: int = 0) -> list[bytes]:
    from forgeml.data.bundled import load_bundled

    df, _ = load_bundled("default")
    rows = df.drop(columns=["default"]).sample(n, replace=True, random_state=seed).to_dict("records")
    return [json.dumps({"instances": [r]}).encode() for r in rows]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=3000, help="per concurrency level and server")
    p.add_argument("--seconds", type=float, default=20, help="time bound per level")
    p.add_argument("--concurrency", default="1,8,32")
    p.add_argument("--threads", type=int, default=1, help="inference threads for both servers")
    args = p.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    print(f"# serve load benchmark\n{machine()}\n")
    with tempfile.TemporaryDirectory() as tmp:
        from forgeml import api

        run = api.train({"name": "default-mlp", "runs_dir": tmp, "data": {"source": "bundled:default"}, "model": {"name": "mlp"},
                         "tracking": {"uri": "none"}, "train": {"epochs": 3}}, quiet=True).run_dir
        api.export(run)
        bodies = bodies_for(args.requests)
        env = {**os.environ, "FORGEML_RUN": str(run), "NAIVE_THREADS": str(args.threads), "OMP_NUM_THREADS": str(args.threads)}
        servers = {
            "forgeml serve": ([str(BIN / "forgeml"), "serve", str(run), "--port", "{port}", "--threads", str(args.threads)],
                              "/v1/models/default-mlp/predict", "/readyz"),
            "naive (FastAPI + eager PyTorch)": ([str(BIN / "uvicorn"), "--app-dir", str(HERE), "naive_server:app", "--port", "{port}",
                                                "--log-level", "warning"], "/predict", "/openapi.json"),
        }
        results: dict[str, dict[int, dict]] = {}
        for name, (cmd, path, ready) in servers.items():
            port = free_port()
            proc = subprocess.Popen([c.replace("{port}", str(port)) for c in cmd], env=env, stdout=subprocess.DEVNULL)
            try:
                wait_ready(port, ready, proc)
                asyncio.run(load(port, path, bodies[:200], 4, 10))  # warm-up
                results[name] = {c: asyncio.run(load(port, path, bodies, c, args.seconds)) for c in levels}
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    ours, naive = results["forgeml serve"], results["naive (FastAPI + eager PyTorch)"]
    rows = []
    for name, res in results.items():
        for c in levels:
            r = res[c]
            rows.append([name, c, r["requests"], r["errors"], f"{r['throughput']:.0f}", f"{r['p50']:.2f}", f"{r['p95']:.2f}",
                         f"{r['p99']:.2f}", "–" if r["server_p50"] is None else f"{r['server_p50']:.3f}"])
    print(table(["server", "concurrency", "requests", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms", "server-side p50 ms"], rows))
    top = max(levels)
    ratio = ours[top]["throughput"] / naive[top]["throughput"]
    checks = [
        (f"throughput at concurrency {top}, forgeml / naive", f"{ratio:.2f}x", ">= 3x", ratio >= 3),
        (f"p95 at concurrency {top}, forgeml vs naive", f"{ours[top]['p95']:.2f} vs {naive[top]['p95']:.2f} ms", "no worse",
         ours[top]["p95"] <= naive[top]["p95"]),
        ("forgeml server-side p50 at concurrency 1", f"{ours[min(levels)]['server_p50']:.3f} ms", "<= 2 ms",
         ours[min(levels)]["server_p50"] <= 2),
    ]
    print()
    print(table(["target", "measured", "goal", "met"], [[n, m, g, "yes" if ok else "NO"] for n, m, g, ok in checks]))
    missed = [n for n, _, _, ok in checks if not ok]
    print(f"\ntargets missed: {', '.join(missed)}" if missed else "\nall targets met")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
