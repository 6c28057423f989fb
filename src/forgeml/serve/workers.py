"""`forgeml serve --workers N` on Linux: N processes, each with a listening socket of its own in one SO_REUSEPORT
group, so that the kernel spreads new connections over the workers (by a hash of each connection's addresses).

uvicorn's own ``workers=N`` binds one socket in the parent and shares it; the workers then race to accept, and the
one that wins takes the whole burst of connections waiting at that moment. Long-lived keep-alive connections stay
where they landed, so a load balancer or a client pool can keep one worker busy while the other idles: the playbook
entry scale-out measured all 10,200 requests of 32 keep-alive clients on one of two workers. Where the kernel does
not balance SO_REUSEPORT sockets (macOS, Windows), serve.run falls back to uvicorn's supervisor.
"""
from __future__ import annotations

import multiprocessing
import signal
import socket
import sys
import time

from forgeml.errors import ConfigError

APP = "forgeml.serve.app:app_from_env"  # each worker builds the app from $FORGEML_SERVE_CONFIG
BACKLOG = 2048  # uvicorn's default
CRASH_LOOP_SECONDS = 10.0  # a worker that dies sooner after its start stops the server instead of restarting


def balanced() -> bool:
    """Whether the kernel load-balances connections over the sockets of one SO_REUSEPORT group (Linux >= 3.9)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def bind(host: str, port: int, group: bool = True) -> socket.socket:
    """A listening TCP socket on (host, port), in the port's SO_REUSEPORT group unless ``group`` is False (then the
    bind fails while anything listens there). It is created with proto IPPROTO_TCP so that asyncio turns Nagle's
    algorithm off on the connections it accepts (it checks the proto)."""
    info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = info[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if group:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def check_port(host: str, port: int) -> None:
    """Refuse a port something already listens on, before any model is loaded. The bind is outside any SO_REUSEPORT
    group, so another `forgeml serve --workers` there is refused too, rather than quietly sharing its connections."""
    try:
        bind(host, port, group=False).close()
    except OSError as e:
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e} (is another server running there?)") from None


def _worker(host: str, port: int, options: dict) -> None:
    """One worker process: load the models, then join the port's group (so no connection waits on a worker that is
    still loading), then serve until SIGINT/SIGTERM."""
    import uvicorn

    config = uvicorn.Config(APP, factory=True, host=host, port=port, **options)
    config.load()
    uvicorn.Server(config).run(sockets=[bind(host, port)])


def run(host: str, port: int, workers: int, options: dict) -> None:
    """Start ``workers`` processes and keep them running: one that dies is restarted, unless it died within
    CRASH_LOOP_SECONDS of its start (a model that fails to load, the port taken), which stops them all. SIGINT and
    SIGTERM stop every worker gracefully (uvicorn's shutdown) and return. The caller has checked the port
    (check_port) and the models."""
    spawn = multiprocessing.get_context("spawn")
    stopping = []

    def start() -> tuple:
        proc = spawn.Process(target=_worker, args=(host, port, options), daemon=False)
        proc.start()
        return proc, time.monotonic()

    def stop(signum, _frame):
        stopping.append(signum)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    procs = [start() for _ in range(workers)]
    failed = None
    try:
        while not stopping and failed is None:
            time.sleep(0.2)
            for i, (proc, started) in enumerate(procs):
                if proc.is_alive() or stopping:
                    continue
                if time.monotonic() - started < CRASH_LOOP_SECONDS:
                    failed = f"a worker exited with code {proc.exitcode} {time.monotonic() - started:.1f} s after it started"
                    break
                print(f"worker {proc.pid} exited with code {proc.exitcode}; starting another", file=sys.stderr, flush=True)
                procs[i] = start()
    finally:
        for proc, _ in procs:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: uvicorn finishes the requests in flight, then exits
        for proc, _ in procs:
            proc.join(timeout=options.get("timeout_graceful_shutdown", 30) + 5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for s, handler in previous.items():
            signal.signal(s, handler)
    if failed:  # not the user's input (the parent loaded every model and checked the port): exit 1, one line
        print(f"error: forgeml serve --workers {workers} stopped: {failed} (its error is above)", file=sys.stderr)
        raise SystemExit(1)
