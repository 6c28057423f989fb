"""`forgeml serve` through its command line: real server processes on 127.0.0.1 and real HTTP requests.

What the docs promise and this file checks: --api-key and $FORGEML_API_KEY (with /healthz, /readyz, /metrics and /
left open), --max-batch, --max-wait-ms (and a lone request never waits for it), --max-body-mb (also for a chunked
body), --workers, --host, --threads, /readyz answering 503 until the batchers run, the Server-Timing header, the
1,024-instance limit (422 above it), the web page at / (without a browser; tests/test_serve_page.py drives one when chromium is
installed), and what --ray says when ray (the cluster extra) is not installed."""
from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from forgeml import api

from conftest import cli, fast_train, user_error

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
pytest.importorskip("uvicorn", reason="the serve extra (uvicorn) is not installed")
pytest.importorskip("prometheus_client", reason="the serve extra (prometheus_client) is not installed")
httpx = pytest.importorskip("httpx", reason="httpx is not installed")

from forgeml.serve.app import API_KEY_ENV, CONFIG_ENV, ServeSettings, app_from_env, create_app  # noqa: E402
from forgeml.serve.registry import build_registry  # noqa: E402

FORGEML = Path(sys.executable).with_name("forgeml")  # the console script of this environment (.venv/bin/forgeml)
KEY, ENV_KEY = "flag-s3cret", "env-s3cret"
ROW = {"student": "Yes", "balance": 1500.0, "income": 20000.0}
PREDICT = "/v1/models/churn/predict"
AUTH = {"x-api-key": KEY}
TIMING = re.compile(r"^app;dur=(\d+\.\d{3})$")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    result = api.train({"name": "churn", "runs_dir": str(tmp_path_factory.mktemp("runs")), "tracking": {"uri": "none"},
                        "data": {"source": "bundled:default"}, "model": {"name": "lightgbm", "n_estimators": 20},
                        "train": fast_train()}, quiet=True)  # LightGBM: the quickest run to train and export
    api.export(result.run_dir)  # once, here: the two servers below would otherwise both export it at start
    return result.run_dir


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """`forgeml serve ... --host 127.0.0.1 --port P` as a child process in its own session (so that it and its
    uvicorn workers can always be stopped together)."""

    def __init__(self, args: list[str], env: dict, log: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self._log = open(log, "wb")
        environ = {k: v for k, v in os.environ.items() if k not in (API_KEY_ENV, CONFIG_ENV)}
        self.proc = subprocess.Popen([str(FORGEML), "serve", *args, "--host", "127.0.0.1", "--port", str(self.port)],
                                     stdout=self._log, stderr=subprocess.STDOUT, env={**environ, **env},
                                     start_new_session=True)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"forgeml serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"forgeml serve was not ready after {timeout} s:\n{self.output()}")
            time.sleep(0.1)

    def stop(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.terminate()  # SIGTERM: uvicorn's graceful shutdown (it stops its workers too)
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    pass
            try:  # whatever is left of this server's own process group (a worker that outlived it, or all of it)
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait(timeout=30)
        finally:
            self._log.close()


@pytest.fixture(scope="module")
def launched(run_dir, tmp_path_factory):
    """Two servers, launched together (tests of the first run while the second is still loading): `keyed` (one
    process, --api-key over a different $FORGEML_API_KEY, small batches, a long batching wait, a 0.25 MB body limit,
    one ONNX Runtime thread) and `workers` (--workers 2, the key from $FORGEML_API_KEY only)."""
    logs = tmp_path_factory.mktemp("serve-logs")
    started = {}
    try:
        started["keyed"] = Served([str(run_dir), "--api-key", KEY, "--max-batch", "4", "--max-wait-ms", "500",
                                   "--max-body-mb", "0.25", "--threads", "1"], {API_KEY_ENV: "not-the-flag"}, logs / "keyed.log")
        started["workers"] = Served([str(run_dir), "--workers", "2", "--threads", "1"], {API_KEY_ENV: ENV_KEY},
                                    logs / "workers.log")
        yield started
    finally:
        for s in started.values():
            s.stop()


@pytest.fixture(scope="module")
def keyed(launched) -> Served:
    launched["keyed"].wait_ready()
    return launched["keyed"]


@pytest.fixture(scope="module")
def workers(launched) -> Served:
    launched["workers"].wait_ready()
    return launched["workers"]


def _post(url: str, body, headers=AUTH, **kw) -> httpx.Response:
    content = body if isinstance(body, (bytes, str)) or hasattr(body, "__next__") else json.dumps(body)
    return httpx.post(url, content=content, headers={"content-type": "application/json", **headers}, timeout=60, **kw)


def _dur(response: httpx.Response) -> float:
    """The server's own time for the request, in ms, from `Server-Timing: app;dur=MS`."""
    m = TIMING.match(response.headers.get("server-timing", ""))
    assert m, f"no Server-Timing header of the form app;dur=MS: {response.headers.get('server-timing')!r}"
    return float(m.group(1))


def _samples(metrics_text: str) -> dict[str, float]:
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in metrics_text.splitlines() if line and not line.startswith("#")}


def _metrics(url: str) -> dict[str, float]:
    r = httpx.get(url + "/metrics", timeout=30)  # no key: /metrics stays open for scrapers
    assert r.status_code == 200, r.text
    return _samples(r.text)


# ------------------------------------------------------ the `keyed` server: one process, many options
def test_api_key_flag_guards_the_api_but_not_probes_metrics_or_page(keyed):
    s = keyed
    assert "  API key required" in s.output() and f"http://127.0.0.1:{s.port}/" in s.output()
    before = _metrics(s.url)

    for headers in ({}, {"x-api-key": "not-the-flag"}, {"authorization": "Bearer wrong"}):  # the env key is not it
        r = _post(s.url + PREDICT, {"instances": [ROW]}, headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", (headers, r.status_code)
        assert r.json()["detail"].startswith("missing or wrong API key")
    r = httpx.get(s.url + "/v1/models")
    assert r.status_code == 401 and "API key" in r.json()["detail"]

    ok = _post(s.url + PREDICT, {"instances": [ROW]})
    bearer = _post(s.url + PREDICT, {"instances": [ROW]}, headers={"authorization": f"Bearer {KEY}"})
    assert ok.status_code == bearer.status_code == 200 and ok.json() == bearer.json()
    assert ok.json()["labels"] == ["No", "Yes"] and ok.json()["predictions"][0] in ("No", "Yes")
    models = httpx.get(s.url + "/v1/models", headers=AUTH).json()["models"]
    assert [(m["name"], m["version"], m["default"]) for m in models] == [("churn", "1", True)]

    # open without the key: probes, the page, and /metrics, which counted exactly the requests above
    assert httpx.get(s.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(s.url + "/readyz").json() == {"ready": True, "models": ["churn:1"]}
    page = httpx.get(s.url + "/")
    assert page.status_code == 200 and 'data-api-key-required="true"' in page.text
    r = httpx.get(s.url + "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    after = _samples(r.text)
    key = 'forgeml_requests_total{model="churn",route="/v1/models/{name}/predict",status="%s"}'
    assert after[key % "401"] - before.get(key % "401", 0) == 3
    assert after[key % "200"] - before.get(key % "200", 0) == 2


def test_max_body_mb_refuses_a_chunked_body_without_content_length(keyed):
    url = keyed.url + PREDICT
    limit = int(0.25 * 1024 * 1024)

    def body(padding: int):
        """A valid request padded with JSON whitespace, sent as chunks (no Content-Length)."""
        yield ('{"instances": [' + json.dumps(ROW)).encode()
        for _ in range(padding // 30_000):
            yield b" " * 30_000
        yield b"]}"

    r = _post(url, body(300_000))
    assert r.request.headers["transfer-encoding"] == "chunked" and "content-length" not in r.request.headers
    assert r.status_code == 413, r.text
    assert r.json() == {"detail": f"request body larger than {limit} bytes"}
    _dur(r)  # refused bodies are timed too

    small = _post(url, body(180_000))  # the same, under the limit: chunked bodies are fine
    assert small.request.headers["transfer-encoding"] == "chunked"
    assert small.status_code == 200 and small.json()["predictions"][0] in ("No", "Yes")

    declared = _post(url, b'{"instances": [' + json.dumps(ROW).encode() + b" " * 300_000 + b"]}")
    assert int(declared.request.headers["content-length"]) > limit
    assert declared.status_code == 413 and declared.json() == {"detail": f"request body larger than {limit} bytes"}


def test_1024_instances_are_answered_and_1025_refused(keyed):
    url = keyed.url + PREDICT
    rows = [{"student": ("No", "Yes")[i % 2], "balance": float(i * 2.5), "income": 10_000.0 + i * 40} for i in range(1025)]

    r = _post(url, {"instances": rows[:1024]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["predictions"]) == len(body["probabilities"]) == 1024
    assert set(body["predictions"]) <= {"No", "Yes"} and all(abs(sum(p) - 1) < 1e-5 for p in body["probabilities"])
    for i in (0, 777, 1023):  # each row's answer is its own, as when asked alone
        alone = _post(url, {"instances": [rows[i]]}).json()
        assert alone["predictions"][0] == body["predictions"][i]
        assert alone["probabilities"][0] == pytest.approx(body["probabilities"][i], abs=1e-5)

    r = _post(url, {"instances": rows})  # 422, as the request schema's maxItems says (413 is for the body's bytes)
    assert r.status_code == 422
    assert r.json() == {"detail": "1025 instances in one request; the limit is 1024"}


def test_server_timing_header_on_every_response(keyed):
    s = keyed
    requests = [("GET", "/readyz", None, {}, 200), ("GET", "/healthz", None, {}, 200), ("GET", "/metrics", None, {}, 200),
                ("GET", "/", None, {}, 200), ("GET", "/v1/models", None, AUTH, 200), ("GET", "/v1/models", None, {}, 401),
                ("POST", PREDICT, json.dumps({"instances": [ROW]}), AUTH, 200),
                ("POST", "/v1/models/nope/predict", json.dumps({"instances": [ROW]}), AUTH, 404),
                ("POST", PREDICT, "not json", AUTH, 400), ("POST", PREDICT, json.dumps({"instances": []}), AUTH, 422),
                ("GET", "/no/such/route", None, {}, 404)]
    with httpx.Client(base_url=s.url, timeout=30) as c:
        for method, path, content, headers, status in requests:
            tic = time.perf_counter()
            r = c.request(method, path, content=content, headers={"content-type": "application/json", **headers})
            wall_ms = (time.perf_counter() - tic) * 1000
            assert r.status_code == status, (method, path, r.status_code)
            assert 0 < _dur(r) <= wall_ms + 0.5, (path, _dur(r), wall_ms)  # the server's part of what the client saw


def test_a_lone_request_is_not_delayed_by_batching_but_waits_for_one_still_arriving(keyed):
    """--max-wait-ms 500: the batcher waits that long for more rows only while another request is being read."""
    url = keyed.url + PREDICT
    with httpx.Client(timeout=30, headers={"content-type": "application/json", **AUTH}) as c:
        c.post(url, content=json.dumps({"instances": [ROW]}))  # warm-up: connection and first run
        lone = []
        for _ in range(7):
            r = c.post(url, content=json.dumps({"instances": [ROW]}))
            assert r.status_code == 200
            lone.append(_dur(r))
    assert statistics.median(lone) < 250, lone  # far under the 500 ms window (a waiting request takes >= 500)

    def slow_body():  # a request whose body takes 2 s to arrive: it is "being decoded" all that time
        yield b'{"instances": ['
        time.sleep(2.0)
        yield json.dumps(ROW).encode() + b"]}"

    slow = {}
    sender = threading.Thread(target=lambda: slow.update(r=_post(url, slow_body())))
    sender.start()
    try:
        time.sleep(0.4)
        r = _post(url, {"instances": [ROW]})
    finally:
        sender.join(timeout=60)
    assert r.status_code == 200 and slow["r"].status_code == 200
    assert slow["r"].json()["predictions"] == r.json()["predictions"]
    waited = _dur(r)
    assert 480 <= waited < 1400, waited  # it waited --max-wait-ms for company, and not until the slow body arrived


def test_max_batch_caps_the_rows_per_onnx_runtime_call(keyed):
    """--max-batch 4: 24 concurrent requests (18 of one row, 6 of three) are merged into fewer ONNX Runtime calls than
    requests, and no call has more than 4 rows (a request that would overflow a batch waits for the next one)."""
    s = keyed
    sizes = [3 if i % 4 == 3 else 1 for i in range(24)]

    async def fire():
        async with httpx.AsyncClient(base_url=s.url, timeout=60, limits=httpx.Limits(max_connections=len(sizes))) as c:
            return await asyncio.gather(*(c.post(PREDICT, json={"instances": [{**ROW, "balance": 100.0 * i}] * n}, headers=AUTH)
                                          for i, n in enumerate(sizes)))

    before = _metrics(s.url)
    responses = asyncio.run(fire())
    after = _metrics(s.url)
    assert [r.status_code for r in responses] == [200] * len(sizes)
    assert [len(r.json()["predictions"]) for r in responses] == sizes  # each request gets its own rows back

    def delta(name):
        return after.get(name, 0) - before.get(name, 0)

    calls = delta('forgeml_batch_size_count{model="churn"}')
    assert delta('forgeml_batch_size_sum{model="churn"}') == sum(sizes) == 36
    assert delta('forgeml_batch_size_bucket{le="4.0",model="churn"}') == calls  # every call had at most 4 rows
    assert 9 <= calls < len(sizes), calls  # batching did happen, so the cap was what held the calls to 4 rows


# ----------------------------------------------------------------------------------------------- the web page
class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.scripts, self.styles, self.links = set(), [], [], []
        self._in = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        for attr in ("src", "href", "action"):
            if a.get(attr):
                self.links.append((tag, a.get("rel"), a[attr]))
        if tag in ("script", "style"):
            self._in = (tag, a.get("src"))
            (self.scripts if tag == "script" else self.styles).append([a.get("src"), ""])

    def handle_endtag(self, tag):
        if self._in and tag == self._in[0]:
            self._in = None

    def handle_data(self, data):
        if self._in:
            (self.scripts if self._in[0] == "script" else self.styles)[-1][1] += data


def _page_assets(url: str, headers: dict) -> tuple[_Page, str, str]:
    """GET / and everything it loads from the server: (the parsed page, all its JavaScript, all its CSS)."""
    r = httpx.get(url + "/", headers=headers)
    assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
    page = _Page()
    page.feed(r.text)
    js, css = [], [text for _, text in page.styles]
    for src, text in page.scripts:
        if src:
            asset = httpx.get(url + src if src.startswith("/") else f"{url}/{src}")
            assert asset.status_code == 200 and re.match(r"(text|application)/javascript", asset.headers["content-type"]), src
            text = asset.text
        js.append(text)
    for tag, rel, href in page.links:
        assert not re.match(r"^(https?:)?//", href), f"the page loads {href} from elsewhere: it must work offline"
        if tag == "link" and rel == "stylesheet":
            sheet = httpx.get(url + href if href.startswith("/") else f"{url}/{href}")
            assert sheet.status_code == 200 and sheet.headers["content-type"].startswith("text/css"), href
            css.append(sheet.text)
    return page, "\n".join(js), "\n".join(css)


def test_the_page_at_root_is_the_model_page_without_a_browser(keyed, run_dir):
    s = keyed
    page, js, css = _page_assets(s.url, {})  # the page itself needs no key: it asks for it
    html = httpx.get(s.url + "/").text
    assert "<title>forgeml model server</title>" in html and 'data-api-key-required="true"' in html
    assert {"model-select", "predict-form", "fields", "predict-button", "api-key-row", "api-key", "prediction", "bars",
            "error"} <= page.ids
    assert len(js) > 2000 and "#fields" in css  # the script and the stylesheet arrived
    # every element the script looks up by id is in the document
    looked_up = set(re.findall(r"""\$\(\s*["']([\w-]+)["']\s*\)""", js)) | set(re.findall(r"""getElementById\(\s*["']([\w-]+)["']""", js))
    assert looked_up and looked_up <= page.ids, sorted(looked_up - page.ids)
    # the links in the page and the routes the script calls are served
    for path in ("/docs", "/metrics"):
        assert f'href="{path}"' in html and httpx.get(s.url + path).status_code == 200
    assert '"/readyz"' in js and '"/v1/models"' in js and re.search(r"/v1/models/\$\{[^}]+\}/versions/\$\{[^}]+\}/predict", js)
    # the form is built from /v1/models: the script handles each of the model's feature types, and a row filled the
    # way the form fills it (a number per numeric field, a listed level per categorical one) predicts
    (model,) = httpx.get(s.url + "/v1/models", headers=AUTH).json()["models"]
    spec = httpx.get(s.url + "/openapi.json").json()  # the route the script posts to, documented with the model's fields
    assert f"/v1/models/{model['name']}/versions/{model['version']}/predict" in spec["paths"]
    schema = {f["name"]: f for f in model["input_schema"]}
    assert set(schema) == {"student", "balance", "income"} and schema["student"]["levels"] == ["No", "Yes"]
    for f in schema.values():
        assert f'"{f["type"]}"' in js, f"the page's script has no case for {f['type']} features"
    row = {name: (f["levels"][-1] if f["type"] == "categorical" else 1234.5) for name, f in schema.items()}
    r = _post(f"{s.url}/v1/models/{model['name']}/versions/{model['version']}/predict", {"instances": [row]})
    assert r.status_code == 200 and r.json()["labels"] == model["labels"] == ["No", "Yes"]

    # on a server without a key the page leaves the key field hidden
    from fastapi.testclient import TestClient

    with TestClient(create_app(build_registry([str(run_dir)]), ServeSettings())) as c:
        assert 'data-api-key-required="false"' in c.get("/").text


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed (only used to parse the page's script)")
def test_the_page_script_parses(keyed, tmp_path):
    _, js, _ = _page_assets(keyed.url, {})
    (tmp_path / "page.js").write_text(js)
    done = subprocess.run(["node", "--check", str(tmp_path / "page.js")], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


# ------------------------------------------------------------------------- in this process (no server listens)
def test_serve_options_reach_uvicorn_the_app_and_onnx_runtime(run_dir, monkeypatch, capsys):
    """Every option lands where it acts, in one process and through --workers' environment hand-over (uvicorn.run is
    replaced: nothing listens here)."""
    import uvicorn

    from forgeml.serve import workers as supervisor

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    monkeypatch.setattr(supervisor, "check_port", lambda host, port: None)  # nothing listens: 8000 may be taken here
    monkeypatch.setenv(API_KEY_ENV, ENV_KEY)
    monkeypatch.setenv(CONFIG_ENV, "")  # serve --workers writes it for the workers; restored after the test

    assert cli("serve", str(run_dir), "--host", "0.0.0.0", "--port", "9123", "--max-batch", "7", "--max-wait-ms", "12.5",
               "--max-body-mb", "0.5", "--threads", "1") == 0
    app, kw = calls[-1]
    assert (kw["host"], kw["port"], kw.get("workers", 1), kw["proxy_headers"]) == ("0.0.0.0", 9123, 1, False)
    assert app.state.settings == ServeSettings(max_batch=7, max_wait_ms=12.5, api_key=ENV_KEY, max_body_bytes=524_288)
    (batcher,) = app.state.batchers.values()
    assert batcher.max_batch == 7 and batcher.max_wait == pytest.approx(0.0125)
    (model,) = app.state.registry.all()
    assert model.session.get_session_options().intra_op_num_threads == 1
    assert "http://0.0.0.0:9123/" in capsys.readouterr().out

    # --api-key beats $FORGEML_API_KEY; without --threads ONNX Runtime picks its own thread count (0 = all cores)
    assert cli("serve", str(run_dir), "--api-key", KEY) == 0
    app, kw = calls[-1]
    assert app.state.settings.api_key == KEY and (kw["host"], kw["port"]) == ("127.0.0.1", 8000)
    assert app.state.registry.all()[0].session.get_session_options().intra_op_num_threads == 0

    # --workers N: N processes that each build the app from the environment, with the same options. On Linux each
    # has its own SO_REUSEPORT socket (serve/workers.py); elsewhere uvicorn's supervisor shares one socket.
    supervised = []
    monkeypatch.setattr(supervisor, "run", lambda *args: supervised.append(args))
    workers_args = ["--workers", "3", "--max-batch", "5", "--max-wait-ms", "0", "--max-body-mb", "2", "--threads", "1"]
    assert cli("serve", str(run_dir), *workers_args) == 0
    if supervisor.balanced():
        (host, port, n, options), = supervised
        assert (host, port, n, options["proxy_headers"], options["log_level"]) == ("127.0.0.1", 8000, 3, False, "warning")
    monkeypatch.setattr(supervisor, "balanced", lambda: False)
    assert cli("serve", str(run_dir), *workers_args) == 0
    app, kw = calls[-1]
    assert app == "forgeml.serve.app:app_from_env" and kw["factory"] is True and kw["workers"] == 3
    worker = app_from_env()
    assert worker.state.settings == ServeSettings(max_batch=5, max_wait_ms=0.0, api_key=ENV_KEY, max_body_bytes=2 * 1024 * 1024)
    assert worker.state.registry.names() == ["churn:1"]
    assert worker.state.registry.all()[0].session.get_session_options().intra_op_num_threads == 1


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_already_listened_on_is_refused_before_any_model_loads(run_dir, workers, capsys, monkeypatch):
    import socket

    from forgeml.serve import registry

    monkeypatch.setattr(registry, "build_registry", lambda *a: pytest.fail("loaded the models for a port it cannot use"))
    # another forgeml serve --workers: its sockets are in a SO_REUSEPORT group, which a second group could join
    taken = socket.socket()
    taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        assert user_error(capsys, "serve", run_dir, "--port", str(port), "--workers", workers) == (
            f"error: cannot listen on 127.0.0.1:{port}: Address already in use (is another server running there?)")
    finally:
        taken.close()


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None,
                    reason="ray is installed, so the message for a missing cluster extra cannot be seen")
def test_serve_ray_without_the_cluster_extra_says_what_to_install(run_dir, capsys):
    """`make test` has no ray (the cluster extra): --ray must say so in one line, and the options that only go with
    (or never with) --ray are refused. Ray Serve itself is not exercised by any test here."""
    assert user_error(capsys, "serve", run_dir, "--ray", "--replicas", "2") == (
        "error: forgeml serve --ray needs the 'ray' package. Install it with: pip install 'forgeml[cluster]'")
    assert user_error(capsys, "serve", run_dir, "--replicas", "2") == (
        "error: --replicas needs --ray (use --workers N for several processes without Ray)")
    assert user_error(capsys, "serve", run_dir, "--ray", "--workers", "2") == (
        "error: --workers is for uvicorn processes; with --ray use --replicas")


def test_readyz_is_503_until_the_batchers_run_and_after_they_stop(run_dir):
    """The app answers /readyz 503 before its startup (models loaded, batchers started), 200 while serving, 503 again
    when a batcher has died and after shutdown. (`forgeml serve` loads the models before it listens, so over the
    network a probe sees no answer, then 200.)"""
    app = create_app(build_registry([str(run_dir)]), ServeSettings())

    async def main():
        transport = httpx.ASGITransport(app=app)  # ASGI calls without the lifespan: nothing has started yet
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as c:
            seen = [await c.get("/readyz")]
            async with app.router.lifespan_context(app):
                seen.append(await c.get("/readyz"))
                predicted = await c.post(PREDICT, json={"instances": [ROW]})
                (batcher,) = app.state.batchers.values()
                batcher._task.cancel()
                await asyncio.sleep(0.01)
                seen.append(await c.get("/readyz"))
            seen.append(await c.get("/readyz"))
            return seen, predicted

    seen, predicted = asyncio.run(main())
    assert [r.status_code for r in seen] == [503, 200, 503, 503]
    assert [r.json() for r in seen] == [{"ready": r.status_code == 200, "models": ["churn:1"]} for r in seen]
    assert predicted.status_code == 200 and predicted.json()["model"] == "churn"
    assert all(_dur(r) >= 0 for r in seen)


# ------------------------------------------- the `workers` server (last: it has had the longest to start)
def test_forgeml_api_key_environment_variable_and_two_workers(workers):
    s = workers
    assert "  API key required" in s.output()
    assert _post(s.url + PREDICT, {"instances": [ROW]}, headers={}).status_code == 401
    assert _post(s.url + PREDICT, {"instances": [ROW]}, headers={"x-api-key": KEY}).status_code == 401
    r = _post(s.url + PREDICT, {"instances": [ROW]}, headers={"x-api-key": ENV_KEY})
    assert r.status_code == 200 and r.json()["predictions"][0] in ("No", "Yes")
    assert httpx.get(s.url + "/metrics").status_code == 200 and httpx.get(s.url + "/readyz").status_code == 200

    # --workers 2: two uvicorn worker processes under the server, each with its own ONNX Runtime loaded
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().decode(errors="replace")
        except (OSError, IndexError):
            continue
        if int(fields[1]) == s.proc.pid and "spawn_main" in cmdline:
            children.append(stat.parent)
    assert len(children) == 2, [c.name for c in children]
    for child in children:
        assert "onnxruntime" in (child / "maps").read_text()

    # each worker listens on a socket of its own in the port's SO_REUSEPORT group (not one socket they race on) ...
    listening = {int(line.split()[9]) for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
                 if line.split()[3] == "0A" and int(line.split()[1].split(":")[1], 16) == s.port}
    owned = [{int(fd.readlink().name[8:-1]) for fd in (child / "fd").iterdir() if fd.readlink().name.startswith("socket:")}
             & listening for child in children]
    assert len(listening) == 2 and all(len(o) == 1 for o in owned) and owned[0] != owned[1], (listening, owned)
    # ... so the kernel spreads new connections over both: 20 one-request connections, then each worker's own count
    # (a scrape is answered by one worker; all 20 on one worker, or all 24 scrapes, would have odds of about 1e-6)
    for _ in range(20):
        assert _post(s.url + PREDICT, {"instances": [ROW]}, headers={"x-api-key": ENV_KEY}).status_code == 200
    key = 'forgeml_requests_total{model="churn",route="/v1/models/{name}/predict",status="200"}'
    counts = {_metrics(s.url)[key] for _ in range(24)}
    assert len(counts) == 2 and sum(counts) == 21, counts
