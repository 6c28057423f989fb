"""Where a request's CPU goes in `forgeml serve`: the server's event loop under cProfile while a second process sends
one-row requests (serve_load.py's client) at one concurrency level. Inference itself runs in the batcher's thread
(ONNX Runtime) and is not in the profile; everything the event loop does (HTTP parsing, middleware, JSON, encoding
the rows, the batcher, the response) is.

    .venv/bin/python benchmarks/serve_profile.py [--requests 3000] [--concurrency 32] [--top 25]
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_load import bodies_for, free_port, wait_ready  # noqa: E402

CLIENT = """
import asyncio, json, sys
sys.path.insert(0, sys.argv[1])
from serve_load import load
bodies = [b.encode() for b in json.loads(sys.stdin.read())]
print(json.dumps(asyncio.run(load(int(sys.argv[2]), sys.argv[3], bodies, int(sys.argv[4]), 120))))
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=3000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    import uvicorn

    from forgeml import api
    from forgeml.serve.app import ServeSettings, create_app
    from forgeml.serve.registry import build_registry
    from forgeml.serve.run import UVICORN

    with tempfile.TemporaryDirectory() as tmp:
        run = api.train({"name": "default-mlp", "runs_dir": tmp, "data": {"source": "bundled:default"}, "model": {"name": "mlp"},
                         "tracking": {"uri": "none"}, "train": {"epochs": 3}}, quiet=True).run_dir
        api.export(run)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(build_registry([str(run)], threads=2), ServeSettings()),
                                               host="127.0.0.1", port=port, **UVICORN))  # as forgeml serve runs it
        bodies = json.dumps([b.decode() for b in bodies_for(args.requests)])
        profile, result = cProfile.Profile(), {}

        def client():
            wait_ready(port, "/readyz", type("P", (), {"poll": lambda self: None})())
            cmd = [sys.executable, "-c", CLIENT, str(Path(__file__).parent), str(port), "/v1/models/default-mlp/predict"]
            subprocess.run(cmd + ["4"], input=json.dumps(json.loads(bodies)[:300]), text=True, capture_output=True)  # warm-up
            out = subprocess.run(cmd + [str(args.concurrency)], input=bodies, text=True, capture_output=True)
            result.update(json.loads(out.stdout))
            server.should_exit = True

        # cProfile sees the thread that enables it: the server's (the event loop), from start to exit (the 300
        # warm-up requests and the server's start are in it, a small part of the whole)
        threading.Thread(target=client, daemon=True).start()
        tic = time.process_time()
        profile.enable()
        server.run()
        profile.disable()
        cpu = time.process_time() - tic
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(args.top)
    print(f"{result['requests']} requests at concurrency {args.concurrency}: {result['throughput']:.0f} req/s (under the "
          f"profiler), p99 {result['p99']:.1f} ms; server process CPU {cpu:.1f} s in all\n")
    print(text.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
