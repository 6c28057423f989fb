"""Containers and scale-out: the same `forgeml serve` with one worker process and with two (`--workers 2`, what the
Docker image runs when given it, and what Ray Serve replicas amount to on one machine), loaded by the same client;
memory of every process, how the requests spread over the workers, throughput and latency percentiles."""
from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

from forgeml.playbook import Evidence, entry
from forgeml.playbook.serving_load import http_get, load, served_model, start_server, stop_server
from forgeml.processes import process_tree, rss_mb

WORKERS = (1, 2)
CONCURRENCY = 32
PREDICTS = re.compile(r'forgeml_requests_total\{[^}]*route="/v1/models/\{name\}/predict"[^}]*status="200"[^}]*\} (\S+)')


def served_by_each(port: int, scrapes: int = 24) -> list[float]:
    """Each worker keeps its own counters and a scrape is answered by one of them, so the distinct predict counts
    seen over several scrapes are the workers' own shares (one value with one worker)."""
    seen = set()
    for _ in range(scrapes):
        m = PREDICTS.search(http_get(port, "/metrics")[1])
        seen.add(float(m.group(1)) if m else 0.0)
    return sorted(seen)


def measure(run_dir: Path, workers: int, bodies: list[bytes], seconds: float, log: Path) -> dict:
    """One server with this many worker processes: memory after start-up, then one load at CONCURRENCY; always
    stopped, its worker processes with it."""
    proc, port = start_server(run_dir, 64, log, timeout=240, workers=workers)
    tree = process_tree(proc.pid)
    try:
        memory = [rss_mb(p) for p in tree]
        asyncio.run(load(port, bodies[:200], 4, 5))  # warm-up: every worker's connections, timing and allocator
        result = asyncio.run(load(port, bodies, CONCURRENCY, seconds))
        return {**result, "processes": len(tree), "rss_mb": sum(memory), "per_process": memory,
                "served": served_by_each(port)}
    finally:
        stop_server(proc)
        for p in tree[1:]:  # a worker its supervisor failed to stop would keep the port and the memory
            if rss_mb(p):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:  # it exited after all
                    pass


@entry(
    "scale-out", "inference",
    question={"en": "One server process is not enough. What do more worker processes, replicas or containers give, "
                    "and what do they cost?",
              "zh": "一个服务进程不够用了。增加工作进程、副本或容器能带来什么？代价是什么？"},
    answer={"en": "Scaling out means running more copies of the same server and spreading the requests over them: "
                  "`forgeml serve --workers N` starts N processes on one machine, each listening on the same port (on "
                  "Linux each has a socket of its own, so the kernel spreads the connections over them); `--ray "
                  "--replicas N` lets Ray Serve manage N replicas; the Docker image (the repository's Dockerfile) "
                  "packages the server so a container platform can run as many as you ask, on as many machines. "
                  "Every copy loads every model and the whole Python stack, so memory grows with the number of "
                  "copies, and each copy batches only the requests it receives. More copies buy throughput only "
                  "where there are idle cores for them: on one machine, first check that one process is really "
                  "the bottleneck (its core busy, the others idle) and measure; across machines, a container image "
                  "and a platform that starts copies on demand is how you get more cores.",
            "zh": "横向扩展就是运行同一服务的多个副本，把请求分给它们：`forgeml serve --workers N` 在一台机器上启动 N "
                  "个进程，监听同一个端口（在 Linux 上每个进程有自己的套接字，由内核把连接分给它们）；`--ray --replicas N` 由 Ray Serve 管理 N 个副本；Docker 镜像（仓库里的 "
                  "Dockerfile）把服务打包好，容器平台可以按需在多台机器上运行任意多个。每个副本都加载全部模型和整套 "
                  "Python 运行环境，所以内存随副本数增长；每个副本只能把自己收到的请求合批。只有存在空闲的 CPU 核时，"
                  "更多副本才能换来吞吐量：在一台机器上，先确认单个进程确实是瓶颈（它的核满载、其他核空闲）再测量；"
                  "要跨机器获得更多核，就靠容器镜像加上能按需启动副本的平台。"},
    claim={"en": "Each worker process holds its own copy of the model and the Python stack: two workers take at least "
                 "1.6 times the memory of one, and both answer requests.",
           "zh": "每个工作进程都持有自己的一份模型和 Python 运行环境：两个工作进程占用的内存至少是一个的 1.6 倍，"
                 "并且两个都在处理请求。"},
    caveats={"en": "One small model (the MLP of serving-under-load: two 1,024-wide layers on breast_cancer, ONNX "
                   "Runtime on one thread per worker), one row per request, 32 clients on keep-alive connections; "
                   "server and load client share one 2-core machine with other work, so the throughput and latency "
                   "of one run move by 10% or more, and a second worker competes with the client for the same two "
                   "cores. Ray Serve and Docker are not run here (neither is installed on the test machine); on one "
                   "machine they amount to the same copies of the process, plus their own proxy. Memory is the "
                   "resident set (VmRSS) of every process of the server just after it answered /readyz: with "
                   "--workers 2, the supervising process (which loaded the models once to check them), the two "
                   "workers and the multiprocessing resource tracker.",
             "zh": "只有一个小模型（serving-under-load 的 MLP：breast_cancer 上两层各 1,024 宽，每个工作进程 ONNX "
                   "Runtime 单线程），每个请求一行，32 个客户端使用长连接；服务器和压测客户端在同一台与其他任务共享的 "
                   "2 核机器上，所以单次运行的吞吐量和延迟会变动 10% 以上，而且第二个工作进程要和客户端争用同样的两个"
                   "核。这里没有运行 Ray Serve 和 Docker（测试机器上都没有安装）；在一台机器上，它们同样是多份进程副本，"
                   "外加各自的代理。内存是服务器在 /readyz 首次返回 200 后所有进程的常驻内存（VmRSS）之和：--workers 2 时"
                   "包括监管进程（它先加载一次模型做检查）、两个工作进程和 multiprocessing 的资源跟踪进程。"},
)
def scale_out(fast: bool, out: Path) -> Evidence:
    run, bodies = served_model(fast, out)
    results = {n: measure(run.run_dir, n, bodies, 2 if fast else 10, out / f"server-workers-{n}.log") for n in WORKERS}
    table = [[n, r["processes"], round(r["rss_mb"]), " + ".join(f"{m:.0f}" for m in r["per_process"]), r["requests"],
              r["errors"], " / ".join(f"{v:g}" for v in r["served"]), round(r["throughput"], 1), round(r["p50"], 3),
              round(r["p99"], 3)] for n, r in results.items()]
    one, two = results[1], results[2]
    memory, speed = two["rss_mb"] / one["rss_mb"], two["throughput"] / one["throughput"]
    supported = memory >= 1.6 and len(two["served"]) >= 2 and min(two["served"]) > 0
    return Evidence(
        ["workers", "processes", "memory MB", "per process MB", "requests", "errors", "predicts per worker",
         "requests/s", "p50 ms", "p99 ms"],
        table, bool(supported),
        {"en": f"Two workers took {two['rss_mb']:.0f} MB against {one['rss_mb']:.0f} MB for one ({memory:.2f}x), and "
               f"the kernel spread the requests over them ({' and '.join(f'{v:g}' for v in two['served'])} predicts "
               f"counted by the workers' own metrics). At {CONCURRENCY} clients they answered {two['throughput']:.0f} "
               f"requests/s against {one['throughput']:.0f} ({speed:.2f}x), p99 {two['p99']:.2f} ms against "
               f"{one['p99']:.2f} ms: on this 2-core machine, shared with the load client, "
               + ("the second process bought throughput." if speed >= 1.1 else
                  "the second process bought little or no throughput, because there was no idle core for it."),
         "zh": f"两个工作进程占用 {two['rss_mb']:.0f} MB，一个为 {one['rss_mb']:.0f} MB（{memory:.2f} 倍）；内核把请求"
               f"分给了两个进程（各进程自己的指标分别计数 {' 和 '.join(f'{v:g}' for v in two['served'])} 次预测）。"
               f"{CONCURRENCY} 个客户端时，每秒处理 {two['throughput']:.0f} 个请求，一个进程为 {one['throughput']:.0f}"
               f"（{speed:.2f} 倍），p99 为 {two['p99']:.2f} 毫秒，一个进程为 {one['p99']:.2f} 毫秒：在这台与压测客户端"
               "共享的 2 核机器上，" + ("第二个进程换来了吞吐量。" if speed >= 1.1 else
                                    "第二个进程几乎没有换来吞吐量，因为没有空闲的核给它。")})
