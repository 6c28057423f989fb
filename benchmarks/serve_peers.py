"""forgeml serve against LitServe, BentoML and a null endpoint, serving the same ONNX file, same client, one server at a
time on 127.0.0.1.

The model is the bundled Default MLP exported by forgeml (its graph does the preprocessing, so every server only
gathers the JSON values into the graph's raw inputs). LitServe and BentoML run in virtual environments of their own
(.bench-venvs/, created by this script with pinned versions; never forgeml dependencies), with dynamic batching on
(64 rows; 5 ms for LitServe, BentoML's adaptive window). The null endpoint is FastAPI + uvicorn parsing the body and
returning a constant: the ceiling of this HTTP stack. The load: one-row requests over keep-alive connections from this
process (serve_load.py's client), at each concurrency level. CPU per request is the server's process tree's CPU time
(/proc) over the level, divided by its requests.

Targets (issue 19), at concurrency 32: forgeml p99 <= 15 ms, throughput >= 0.5 x the null endpoint's and >= 2 x
LitServe's; at concurrency 1: forgeml's server-side p50 < 0.5 ms.

    .venv/bin/python benchmarks/serve_peers.py [--requests 3000] [--concurrency 1,32] [--threads 2] [--peers litserve,bentoml]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table  # noqa: E402
from serve_load import bodies_for, free_port, load, wait_ready  # noqa: E402

from forgeml.processes import cpu_seconds  # noqa: E402

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers"
VENVS = HERE.parent / ".bench-venvs"
BIN = Path(sys.executable).parent
PINS = {"litserve": ["litserve==0.2.19"], "bentoml": ["bentoml==1.4.40"]}
RESULTS = HERE / "serve_peers_results.json"


def venv_python(peer: str) -> Path:
    """The peer's own virtual environment, made on first use: the peer, onnxruntime and numpy at forgeml's versions."""
    import numpy
    import onnxruntime

    python = VENVS / peer / "bin" / "python"
    if not python.exists():
        print(f"creating {VENVS / peer} ({' '.join(PINS[peer])}) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENVS / peer)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PINS[peer], f"onnxruntime=={onnxruntime.__version__}",
                        f"numpy=={numpy.__version__}"], check=True)
    return python


def servers(run: Path, spec: dict, threads: int, peers: list[str]) -> dict:
    """name -> (command, cwd, environment additions, predict path, ready path)."""
    out = {"forgeml serve": ([str(BIN / "forgeml"), "serve", str(run), "--port", "{port}", "--threads", str(threads)], None, {},
                             f"/v1/models/{run.name}/predict", "/readyz"),
           "null endpoint (FastAPI, constant)": ([str(BIN / "uvicorn"), "--app-dir", str(PEERS), "null_server:app", "--port",
                                                  "{port}", "--log-level", "warning"], None, {}, "/predict", "/openapi.json")}
    env = {"PEER_SPEC": json.dumps(spec), "OMP_NUM_THREADS": str(threads)}
    if "litserve" in peers:
        out["LitServe 0.2.19 (batch 64 / 5 ms)"] = ([str(venv_python("litserve")), "litserve_server.py"], PEERS,
                                                     {**env, "PEER_PORT": "{port}"}, "/predict", "/health")
    if "bentoml" in peers:
        python = venv_python("bentoml")
        out["BentoML 1.4.40 (batchable)"] = ([str(python.parent / "bentoml"), "serve", "bentoml_service:OnnxModel", "--port",
                                              "{port}", "--host", "127.0.0.1"], PEERS, {**env, "BENTOML_DO_NOT_TRACK": "True"},
                                             "/predict", "/readyz")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=3000, help="per concurrency level and server")
    p.add_argument("--seconds", type=float, default=30, help="time bound per level")
    p.add_argument("--concurrency", default="1,32")
    p.add_argument("--threads", type=int, default=2, help="inference threads of every server")
    p.add_argument("--peers", default="litserve,bentoml", help="which peers beside forgeml and the null endpoint")
    args = p.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    peers = [x for x in args.peers.split(",") if x]
    print(f"# forgeml serve and its peers\nload average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}\n", flush=True)
    results: dict[str, dict[int, dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        from forgeml import api

        run = api.train({"name": "default-mlp", "runs_dir": tmp, "data": {"source": "bundled:default"}, "model": {"name": "mlp"},
                         "tracking": {"uri": "none"}, "train": {"epochs": 3}}, quiet=True).run_dir
        api.export(run)
        manifest = json.loads((run / "manifest.json").read_text())
        pre = manifest["preprocessing"]
        spec = {"model": str(run / "model.onnx"), "numeric": pre.get("numeric", {}).get("columns", []),
                "categorical": pre.get("categorical", {}).get("columns", []), "labels": manifest["target"]["labels"],
                "threads": args.threads}
        bodies = bodies_for(args.requests)
        for name, (cmd, cwd, extra, path, ready) in servers(run, spec, args.threads, peers).items():
            port = free_port()
            env = {**os.environ, **{k: v.replace("{port}", str(port)) for k, v in extra.items()}}
            proc = subprocess.Popen([c.replace("{port}", str(port)) for c in cmd], cwd=cwd, env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            try:
                wait_ready(port, ready, proc, timeout=180)
                asyncio.run(load(port, path, bodies[:300], 4, 10))  # warm-up
                results[name] = {}
                for c in levels:
                    before = cpu_seconds(proc.pid)
                    r = asyncio.run(load(port, path, bodies, c, args.seconds))
                    r["cpu_ms_per_request"] = (cpu_seconds(proc.pid) - before) * 1000 / max(r["requests"], 1)
                    results[name][c] = r
                print(f"{name}: done", flush=True)
            except RuntimeError as exc:
                print(f"{name}: {exc}; left out", flush=True)
            finally:
                os.killpg(proc.pid, 15)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)
                time.sleep(1)
    rows = []
    for name, res in results.items():
        for c in levels:
            r = res[c]
            rows.append([name, c, r["requests"], r["errors"], f"{r['throughput']:,.0f}", f"{r['p50']:.2f}", f"{r['p95']:.2f}",
                         f"{r['p99']:.2f}", f"{r['cpu_ms_per_request']:.2f}",
                         "–" if r["server_p50"] is None else f"{r['server_p50']:.3f}"])
    print()
    print(table(["server", "concurrency", "requests", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms", "CPU ms/request",
                 "server-side p50 ms"], rows))
    ours, top, low = results["forgeml serve"], max(levels), min(levels)
    null = results["null endpoint (FastAPI, constant)"][top]["throughput"]
    checks = [(f"forgeml p99 at concurrency {top}", f"{ours[top]['p99']:.2f} ms", "<= 15 ms", ours[top]["p99"] <= 15),
              (f"forgeml / null endpoint throughput at {top}", f"{ours[top]['throughput'] / null:.2f}", ">= 0.5",
               ours[top]["throughput"] / null >= 0.5),
              (f"forgeml server-side p50 at concurrency {low}", f"{ours[low]['server_p50']:.3f} ms", "< 0.5 ms",
               ours[low]["server_p50"] < 0.5)]
    for name, res in results.items():
        if name.startswith("LitServe"):
            ratio = ours[top]["throughput"] / res[top]["throughput"]
            checks.append((f"forgeml / LitServe throughput at {top}", f"{ratio:.2f}x", ">= 2x", ratio >= 2))
        elif name.startswith("BentoML"):
            ratio = ours[top]["throughput"] / res[top]["throughput"]
            checks.append((f"forgeml / BentoML throughput at {top}", f"{ratio:.2f}x", "report", True))
    print()
    print(table(["target", "measured", "goal", "met"], [[n, m, g, "yes" if ok else "NO"] for n, m, g, ok in checks]))
    RESULTS.write_text(json.dumps({"levels": levels, "threads": args.threads, "results": results,
                                   "checks": [[n, m, g, ok] for n, m, g, ok in checks]}, indent=1, default=float))
    missed = [n for n, _, _, ok in checks if not ok]
    print(f"\ntargets missed: {', '.join(missed)}" if missed else "\nall targets met")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
