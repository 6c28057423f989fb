"""Serving under load: `forgeml serve` in a process of its own on 127.0.0.1, with dynamic batching on (the default
--max-batch 64) and off (--max-batch 1), loaded at a few concurrencies by an asyncio client over keep-alive
connections; latency percentiles and throughput per setting."""
from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from forgeml.playbook import Evidence, entry
from forgeml.playbook.common import train

DATA = {"source": "bundled:breast_cancer", "target": "diagnosis"}
MODEL = {"name": "mlp", "hidden": [1024, 1024]}  # ~1.1M weights: a row costs a matrix-vector product, a batch a GEMM
NAME = "cancer"
SETTINGS = {"batching (max_batch 64)": 64, "no batching (max_batch 1)": 1}
LEVELS = (1, 8, 32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port: int, path: str) -> tuple[int, str]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode("utf-8", "replace")


def start_server(run_dir: Path, max_batch: int, log: Path, timeout: float = 120,
                 workers: int = 1) -> tuple[subprocess.Popen, int]:
    """`forgeml serve RUN` on 127.0.0.1 and a free port, one inference thread per worker process; returns once
    /readyz answers 200."""
    port = free_port()
    cmd = [sys.executable, "-m", "forgeml.cli", "serve", f"{NAME}={run_dir}", "--host", "127.0.0.1", "--port", str(port),
           "--max-batch", str(max_batch), "--threads", "1", "--precision", "fp32", "--workers", str(workers)]
    with open(log, "wb") as err:  # the child keeps its own copy of the handle
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"forgeml serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if http_get(port, "/readyz")[0] == 200:
                return proc, port
        except OSError:
            pass
        time.sleep(0.1)
    stop_server(proc)
    raise RuntimeError(f"forgeml serve did not become ready in {timeout:.0f} s")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def batch_rows(port: int) -> tuple[float, float]:
    """The server's forgeml_batch_size histogram: (rows, ONNX Runtime calls) so far."""
    text = http_get(port, "/metrics")[1]
    got = {k: float(v) for k, v in re.findall(r'^forgeml_batch_size_(sum|count)\{model="' + NAME + r'"\} (\S+)$', text, re.M)}
    return got.get("sum", 0.0), got.get("count", 0.0)


async def _request(reader, writer, path: str, body: bytes) -> int:
    writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    length = next(int(h.split(":")[1]) for h in head[1:] if h.lower().startswith("content-length:"))
    await reader.readexactly(length)
    return int(head[0].split()[1])


async def load(port: int, bodies: list[bytes], concurrency: int, max_seconds: float) -> dict:
    """``concurrency`` clients, each on one keep-alive connection sending its next request when the last is answered,
    until the bodies or the time run out: client-side latency percentiles (ms) and throughput (requests/s)."""
    path = f"/v1/models/{NAME}/predict"
    latencies, errors, next_i = [], 0, 0
    deadline = time.perf_counter() + max_seconds

    async def client():
        nonlocal next_i, errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while next_i < len(bodies) and time.perf_counter() < deadline:
                body = bodies[next_i]
                next_i += 1
                tic = time.perf_counter()
                status = await _request(reader, writer, path, body)
                latencies.append(time.perf_counter() - tic)
                errors += status != 200
        finally:
            writer.close()

    tic = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    wall = time.perf_counter() - tic
    ms = np.asarray(latencies) * 1e3
    return {"requests": len(ms), "errors": errors, "throughput": len(ms) / wall,
            **{f"p{q}": float(np.percentile(ms, q)) for q in (50, 95, 99)}}


def measure(run_dir: Path, max_batch: int, bodies: list[bytes], levels, seconds: float, log: Path) -> dict[int, dict]:
    """One server with this --max-batch, loaded at each concurrency in turn; always stopped."""
    proc, port = start_server(run_dir, max_batch, log)
    try:
        asyncio.run(load(port, bodies[:100], 4, 5))  # warm-up: connections, the batcher's timing, the allocator
        results = {}
        for c in levels:
            rows0, calls0 = batch_rows(port)
            results[c] = asyncio.run(load(port, bodies, c, seconds))
            rows1, calls1 = batch_rows(port)
            results[c]["batch"] = (rows1 - rows0) / max(calls1 - calls0, 1)
        return results
    finally:
        stop_server(proc)


def served_model(fast: bool, out: Path) -> tuple:
    """The entries' model, trained and exported (so no server start-up includes exporting), and one-row request
    bodies drawn from its data: 600 (--fast) or 10,000."""
    from forgeml import api
    from forgeml.data.bundled import load_bundled

    run = train(out, NAME, DATA, MODEL, train={"epochs": 2 if fast else 20, "threads": 1})
    api.export(run.run_dir)
    df, target = load_bundled("breast_cancer")
    rows = df.drop(columns=[target]).sample(600 if fast else 10_000, replace=True, random_state=0).to_dict("records")
    return run, [json.dumps({"instances": [r]}).encode() for r in rows]


def _plot(path: Path, levels, results: dict[str, dict[int, dict]]) -> str:
    from forgeml.evaluate.plots import pyplot, save_figure

    plt = pyplot()
    fig, (lat, thr) = plt.subplots(1, 2, figsize=(9, 3.6))
    for (label, res), color in zip(results.items(), ("#2b6cb0", "#c05621")):
        for q, style in (("p50", "-"), ("p95", "--"), ("p99", ":")):
            lat.plot(levels, [res[c][q] for c in levels], style, color=color, marker="o", label=f"{label.split(' (')[0]} {q}")
        thr.plot(levels, [res[c]["throughput"] for c in levels], color=color, marker="o", label=label)
    for ax in (lat, thr):
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(levels), [str(c) for c in levels])
        ax.set_xlabel("concurrent clients")
    lat.set_yscale("log")
    lat.set_ylabel("latency (ms, client side)")
    lat.legend(fontsize=7)
    thr.set_ylabel("requests / s")
    thr.set_ylim(bottom=0)
    thr.legend(fontsize=7)
    fig.suptitle("forgeml serve, breast_cancer MLP, one row per request", fontsize=10)
    save_figure(fig, path)
    return path.name


@entry(
    "serving-under-load", "inference",
    question={"en": "How do I serve a model to many users at once? What do batching and the latency percentiles tell "
                    "me under load?",
              "zh": "怎样让一个模型同时服务很多用户？在负载下，批处理和延迟分位数说明了什么？"},
    answer={"en": "Measure the server the way it will be used: many clients at once, each waiting for its answer, and "
                  "report latency percentiles (p50 is the typical user, p95/p99 the unlucky ones a product promises "
                  "about) together with throughput, at each concurrency you expect. A mean hides the tail. When many "
                  "requests arrive together, dynamic batching runs them as one model call (`forgeml serve "
                  "--max-batch`, on by default): the model's per-call cost is paid once per batch instead of once per "
                  "request, so throughput rises and the queue, which is what the tail latency is made of, drains "
                  "faster. A lone request is run at once, so batching should cost nothing at low load. How much it "
                  "buys depends on how much of a request's time the model takes: for a tiny model, HTTP and JSON "
                  "dominate and batching changes little. Load-test your own model (benchmarks/serve_load.py does "
                  "this) before you promise a latency.",
            "zh": "按实际使用的方式测量服务器：很多客户端同时请求、各自等待回复；在你预期的每个并发量下，同时报告延迟"
                  "分位数（p50 代表典型用户，p95/p99 代表运气差的用户，产品承诺的正是它们）和吞吐量。平均值会掩盖长尾。"
                  "很多请求同时到达时，动态批处理把它们合并成一次模型调用（`forgeml serve --max-batch`，默认开启）："
                  "模型每次调用的固定开销按批支付一次，而不是每个请求一次，于是吞吐量上升，排队（长尾延迟主要由它构成）"
                  "消化得更快。单独到达的请求会立即执行，所以低负载时批处理不应增加延迟。它能带来多少收益，取决于模型"
                  "在一个请求的耗时里占多少：模型很小时，HTTP 和 JSON 占了大头，批处理几乎没有影响。在承诺延迟之前，"
                  "先对你自己的模型做压测（benchmarks/serve_load.py 就是这样做的）。"},
    claim={"en": "With 32 concurrent clients, `forgeml serve` with dynamic batching (max_batch 64) answers more requests "
                 "per second and has a lower p99 latency than the same server running one request at a time "
                 "(max_batch 1).",
           "zh": "在 32 个并发客户端下，开启动态批处理（max_batch 64）的 `forgeml serve` 比逐个处理请求（max_batch 1）"
                 "的同一服务器每秒处理更多请求，且 p99 延迟更低。"},
    caveats={"en": "One small model (an MLP with two 1,024-wide layers on the 30 columns of breast_cancer, ONNX Runtime "
                   "on one thread), one row per request, server and load client on the same 2-core machine shared "
                   "with other work, one run per setting and concurrency, of at most 10,000 requests or 10 s "
                   "(--fast: 600 or 2 s), so the numbers move by 10% or more between runs and only their ratios "
                   "carry over to other machines. Latency is measured by the client (it includes HTTP and JSON); no network "
                   "between client and server. A bigger model (a transformer) spends more of each request in the "
                   "model, which favours batching; a tiny one, less.",
             "zh": "只有一个小模型（breast_cancer 的 30 列上两层各 1,024 宽的 MLP，ONNX Runtime 单线程），每个请求一行；"
                   "服务器和压测客户端在同一台与其他任务共享的 2 核机器上；每种设置的每个并发量只跑一次，最多 10,000 个"
                   "请求或 10 秒（--fast：600 个或 2 秒），所以数字在不同运行之间会变动 10% 以上，能迁移到其他机器的只有比值。"
                   "延迟由客户端测得（包含 HTTP 和 JSON），客户端与服务器之间没有网络。更大的模型（如 Transformer）在"
                   "每个请求里花在模型上的时间更多，对批处理更有利；更小的模型则相反。"},
)
def serving_under_load(fast: bool, out: Path) -> Evidence:
    run, bodies = served_model(fast, out)
    seconds = 2 if fast else 10
    results = {label: measure(run.run_dir, mb, bodies, LEVELS, seconds, out / f"server-{mb}.log")
               for label, mb in SETTINGS.items()}
    table = [[label, c, r["requests"], r["errors"], round(r["batch"], 2), round(r["throughput"], 1), round(r["p50"], 3),
              round(r["p95"], 3), round(r["p99"], 3)] for label, res in results.items() for c, r in res.items()]
    on, off = (results[label][max(LEVELS)] for label in SETTINGS)
    low_on, low_off = (results[label][min(LEVELS)] for label in SETTINGS)
    supported = on["throughput"] > off["throughput"] and on["p99"] < off["p99"]
    plot = _plot(out / "serving-under-load.png", LEVELS, results)
    top = max(LEVELS)
    return Evidence(
        ["server", "concurrency", "requests", "errors", "rows per model call", "requests/s", "p50 ms", "p95 ms", "p99 ms"],
        table, bool(supported),
        {"en": f"At concurrency {top}, batching ran {on['batch']:.1f} rows per model call and answered "
               f"{on['throughput']:.0f} requests/s with p99 {on['p99']:.2f} ms, against {off['throughput']:.0f} "
               f"requests/s and p99 {off['p99']:.2f} ms one request at a time ({on['throughput'] / off['throughput']:.2f}x "
               f"the throughput). At concurrency 1 the p50 was {low_on['p50']:.2f} ms with batching and "
               f"{low_off['p50']:.2f} ms without.",
         "zh": f"并发 {top} 时，批处理平均每次模型调用处理 {on['batch']:.1f} 行，每秒处理 {on['throughput']:.0f} 个请求，"
               f"p99 为 {on['p99']:.2f} 毫秒；逐个处理时为每秒 {off['throughput']:.0f} 个请求，p99 {off['p99']:.2f} 毫秒"
               f"（吞吐量是其 {on['throughput'] / off['throughput']:.2f} 倍）。并发 1 时，开启批处理的 p50 为 "
               f"{low_on['p50']:.2f} 毫秒，关闭时为 {low_off['p50']:.2f} 毫秒。"},
        [plot])
