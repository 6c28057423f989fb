"""forgeml explain: explanations are meaningful, not just produced. On synthetic data where one column, one image
region or one word decides the label, that column/region/word ranks first; plus files, report section, CLI input
forms, the server's explain endpoint and every bad input as a clear user error."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from forgeml import api

from conftest import cli, fast_train, user_error

pytest.importorskip("captum")

NOISE = ["x0", "x1", "x2", "x4", "x5", "x6"]
ROW = {"x0": 0.1, "x1": -0.3, "x2": 0.5, "x3": 2.0, "x4": 0.0, "x5": 1.2, "x6": -0.7, "colour": "red"}


pytestmark = pytest.mark.usefixtures("one_thread")


def _train(root, name, source, model, target=None, features=None, **train):
    """``features``: data.features (y = f(x3) makes x3 a single-column leak, which training leaves out unless named)."""
    return api.train({"name": name, "runs_dir": str(root), "data": {"source": str(source), "target": target,
                                                                    "features": features or {}},
                      "model": model, "tracking": {"uri": "none"}, "train": fast_train(threads=1, **train)},
                     quiet=True).run_dir


# --------------------------------------------------------------------------------------------- tables
def _table(n=1000, seed=0) -> pd.DataFrame:
    """y = x3 > 0; six noise columns and a noise category."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(n, 7)), columns=[f"x{i}" for i in range(7)])
    df["colour"] = rng.choice(["red", "green", "blue"], n)
    df["y"] = np.where(df["x3"] > 0, "pos", "neg")
    return df


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain-tables")
    _table().to_csv(root / "signal.csv", index=False)
    keep = {"x3": "numeric"}
    return {"mlp": _train(root, "mlp", root / "signal.csv", {"name": "mlp", "hidden": [32]}, "y", keep, epochs=10, lr=1e-2),
            "lgb": _train(root, "lgb", root / "signal.csv", {"name": "lightgbm", "n_estimators": 60}, "y", keep),
            "root": root}


def test_mlp_permutation_importance_and_ig_rank_the_deciding_column_first(tables):
    result = api.explain(tables["mlp"], quiet=True)
    assert result["methods"] == ["permutation", "ig"]
    perm = result["permutation"]
    assert perm["metric"] == "roc_auc" and perm["rows"] == 150
    ranked = [f["feature"] for f in perm["features"]]
    assert ranked[0] == "x3" and set(ranked) == set(NOISE) | {"x3", "colour"}  # raw columns, not tensor indices
    assert perm["features"][0]["importance"] > 0.3
    assert all(f["importance"] < 0.05 for f in perm["features"][1:])
    rows = result["instances"]
    assert len(rows) == 6 and {r["true"] for r in rows} == {"pos", "neg"}  # spread over the classes
    for r in rows:
        assert set(r["attributions"]) == set(ranked)
        assert r["top"][0] == "x3", r
        assert r["attributions"]["x3"] > 0  # it pushes toward the class the model predicted
    out = tables["mlp"] / "explanations"
    for name in ("permutation_importance.png", "permutation_importance.csv", "rows_ig.png", "attributions_ig.csv",
                 "explanations.json"):
        assert (out / name).is_file(), name
    on_disk = json.loads((out / "explanations.json").read_text())
    assert on_disk["permutation"]["features"][0]["feature"] == "x3"
    report = (tables["mlp"] / "report.html").read_text()
    assert "<h2>Explanations</h2>" in report and "Permutation importance" in report and "rows_ig" in report


def test_ig_attributions_add_up_to_the_change_in_probability(tables):
    """Integrated Gradients' completeness survives the grouping of embedding dimensions into their column."""
    model = api.load(tables["mlp"])
    rows = [ROW, {**ROW, "x3": -1.5, "colour": "blue"}]
    result = api.explain(tables["mlp"], rows, method="ig", out=tables["root"] / "ig-sum", quiet=True)
    pre = model.preprocessor.state
    typical = {c: m for c, m in zip(pre["numeric"]["columns"], pre["numeric"]["fill"])}  # the training mean
    typical["colour"] = pre["categorical"]["levels"][0][0]  # the most frequent level
    p_base = model.predict(pd.DataFrame([typical]))
    for row, rec in zip(rows, result["instances"]):
        p_row = model.predict(pd.DataFrame([row]))[f"proba_{rec['explained']}"].iloc[0]
        gap = p_row - p_base[f"proba_{rec['explained']}"].iloc[0]
        assert sum(rec["attributions"].values()) - rec["delta"] == pytest.approx(gap, abs=1e-4)  # Captum's delta
        assert abs(rec["delta"]) < 0.02
        assert rec["top"][0] == "x3"


def test_lightgbm_permutation_and_lime_rank_the_deciding_column_first(tables):
    result = api.explain(tables["lgb"], quiet=True)
    assert result["methods"] == ["permutation", "lime"]
    assert result["permutation"]["features"][0]["feature"] == "x3"
    for r in result["instances"]:
        assert r["top"][0] == "x3", r
        assert r["attributions"]["x3"] > 3 * max(abs(r["attributions"][c]) for c in [*NOISE, "colour"])


def test_cli_explains_an_inline_json_row_and_a_csv_file(tables, in_tmp, capsys):
    run = tables["mlp"]
    assert cli("explain", str(run), "--input", json.dumps(ROW), "--method", "lime", "--out", "one", "-q") == 0
    out = capsys.readouterr().out
    assert "LIME" in out and "x3" in out
    rec = json.loads((in_tmp / "one" / "explanations.json").read_text())["instances"][0]
    assert rec["top"][0] == "x3" and rec["prediction"] == "pos" and rec["values"]["colour"] == "red"

    _table(n=12, seed=5).drop(columns=["y"]).to_csv("new.csv", index=False)
    assert cli("explain", str(run), "--input", "new.csv", "--out", "many", "-q") == 0  # default for an input: ig
    result = json.loads((in_tmp / "many" / "explanations.json").read_text())
    assert result["methods"] == ["ig"] and len(result["instances"]) == 12
    assert sum(r["top"][0] == "x3" for r in result["instances"]) >= 11
    assert (in_tmp / "many" / "attributions_ig.csv").is_file()


# --------------------------------------------------------------------------------------------- images
def _square(img, quadrant, rng):
    half = img.shape[0] // 2
    r = (0 if quadrant in ("tl", "tr") else half) + rng.integers(1, 3)
    c = (0 if quadrant in ("tl", "bl") else half) + rng.integers(1, 3)
    img[r:r + 4, c:c + 4] = 230


@pytest.fixture(scope="module")
def quadrants(tmp_path_factory):
    """16x16 noise; label 'yes' iff a bright square sits in the top-left quadrant. The other quadrants hold equally
    bright squares at random (half the time each), in both classes: only the top-left decides."""
    from PIL import Image

    root = tmp_path_factory.mktemp("explain-images")
    rng = np.random.default_rng(0)
    for label in ("yes", "no"):
        (root / "data" / label).mkdir(parents=True)
    for i in range(300):
        label = "yes" if i % 2 == 0 else "no"
        img = rng.integers(0, 40, (16, 16)).astype(np.uint8)
        if label == "yes":
            _square(img, "tl", rng)
        for q in ("tr", "bl", "br"):
            if rng.random() < 0.5:
                _square(img, q, rng)
        Image.fromarray(img, "L").save(root / "data" / label / f"{i}.png")
    run = _train(root, "quadrants", root / "data", {"name": "cnn", "channels": [8, 16]}, epochs=8, lr=0.01, batch_size=32)
    return {"run": run, "root": root}


def _quadrant_shares(heatmap) -> dict:
    h = np.abs(np.asarray(heatmap))
    half = h.shape[0] // 2
    q = {"tl": h[:half, :half].sum(), "tr": h[:half, half:].sum(), "bl": h[half:, :half].sum(), "br": h[half:, half:].sum()}
    total = sum(q.values())
    return {k: v / total for k, v in q.items()}


def test_gradcam_and_ig_mass_sits_in_the_deciding_quadrant(quadrants):
    result = api.explain(quadrants["run"], quiet=True, per_class=6)
    assert result["methods"] == ["gradcam", "ig"] and result["files"] == ["grid.png", "explanations.json"]
    right = [r for r in result["instances"] if r["true"] == r["prediction"]]
    yes = [r for r in right if r["true"] == "yes"]
    assert len(yes) >= 5 and len(right) >= 10
    # Grad-CAM looks at the top-left for both answers (a square there, or its absence); IG from a black image can
    # only credit pixels that are bright, so it is checked where the square is present
    for method, examples in (("gradcam", right), ("ig", yes)):
        shares = [_quadrant_shares(r[method]["heatmap"]) for r in examples]
        top = [max(s, key=s.get) for s in shares]
        assert top.count("tl") >= len(examples) - 1, (method, shares)
        assert np.mean([s["tl"] for s in shares]) > 0.4, (method, shares)
    assert all(len(r["gradcam"]["heatmap"]) == 16 for r in result["instances"])
    assert "grid.png" in (quadrants["run"] / "report.html").read_text()


def test_one_image_file_as_input_gets_its_own_panel(quadrants, in_tmp):
    image = next((quadrants["root"] / "data" / "yes").glob("*.png"))
    result = api.explain(quadrants["run"], str(image), method="gradcam", out="one", quiet=True)
    assert result["files"] == ["input_0.png", "explanations.json"] and (in_tmp / "one" / "input_0.png").is_file()
    rec = result["instances"][0]
    assert rec["prediction"] == "yes" and max(_quadrant_shares(rec["gradcam"]["heatmap"]).items(), key=lambda kv: kv[1])[0] == "tl"


# --------------------------------------------------------------------------------------------- text
FILLER = ("the a of and to in is it that was for on are with as they be at one have this from or had by word but what "
          "some we can out other were all there when up use your how said an each she which do their time if will way "
          "about many then them write would like so these her long make thing see him two has look more day could go").split()


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    """Random filler words; label 'animal' iff the word 'zebra' appears."""
    root = tmp_path_factory.mktemp("explain-text")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(500):
        words = list(rng.choice(FILLER, rng.integers(6, 12)))
        if i % 2:
            words.insert(int(rng.integers(0, len(words))), "zebra")
        rows.append({"text": " ".join(words), "label": "animal" if i % 2 else "none"})
    pd.DataFrame(rows).to_csv(root / "zebra.csv", index=False)
    return _train(root, "zebra", root / "zebra.csv", {"name": "text", "embedding_dim": 32, "hidden": 32}, "label",
                  epochs=6, lr=5e-3, batch_size=32)


@pytest.mark.parametrize("method", ["ig", "lime"])
def test_the_deciding_word_ranks_first(texts, method, tmp_path):
    result = api.explain(texts, method=method, out=tmp_path / method, quiet=True, rows=6)
    animal = [r for r in result["instances"] if r["prediction"] == "animal"]
    assert len(animal) >= 2
    for r in animal:
        assert r["top"][0] == "zebra", r
        assert len(r["tokens"]) == len(r["attributions"])
    page = (tmp_path / method / f"text_{method}.html").read_text()
    assert "zebra</span>" in page and page.startswith("<!doctype html>")


# --------------------------------------------------------------------------------------------- server
def test_server_explains_instances_and_refuses_bad_ones(tables):
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from forgeml.serve.app import create_app
    from forgeml.serve.registry import build_registry

    with TestClient(create_app(build_registry([f"signal={tables['mlp']}", f"trees={tables['lgb']}"]))) as client:
        r = client.post("/v1/models/signal/explain", json={"instances": [ROW, {**ROW, "x3": -2.0}]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["method"] == "ig" and body["units"].startswith("probability")
        assert [e["prediction"] for e in body["explanations"]] == ["pos", "neg"]
        for e in body["explanations"]:
            assert e["top"][0] == "x3" and set(e["attributions"]) == {*NOISE, "x3", "colour"}
        r = client.post("/v1/models/trees/explain", json={"instances": [ROW]})
        assert r.status_code == 200 and r.json()["method"] == "lime" and r.json()["explanations"][0]["top"][0] == "x3"

        missing = client.post("/v1/models/signal/explain", json={"instances": [{"x0": 1.0}]})
        assert missing.status_code == 422 and "missing feature" in missing.json()["detail"]
        wrong = client.post("/v1/models/signal/explain", json={"instances": [{**ROW, "x3": "high"}]})
        assert wrong.status_code == 422 and "instances[0].x3" in wrong.json()["detail"]
        assert client.post("/v1/models/signal/explain", json={"instances": [ROW], "method": "gradcam"}).status_code == 422
        assert client.post("/v1/models/trees/explain", json={"instances": [ROW], "method": "ig"}).status_code == 422
        glob = client.post("/v1/models/signal/explain", json={"instances": [ROW], "method": "permutation"})
        assert glob.status_code == 422 and "global" in glob.json()["detail"]
        assert client.post("/v1/models/nope/explain", json={"instances": [ROW]}).status_code == 404
        assert client.post("/v1/models/signal/explain", json={"instances": [ROW] * 33}).status_code == 422


def test_server_explain_of_a_run_whose_weights_are_gone_is_a_409(tables, tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from forgeml.serve.app import create_app
    from forgeml.serve.registry import build_registry

    run = tmp_path / "gone"
    shutil.copytree(tables["mlp"], run)
    registry = build_registry([str(run)])  # model.onnx is written; predictions keep working without the weights
    (run / "model.safetensors").unlink()
    with TestClient(create_app(registry)) as client:
        assert client.post("/v1/models/gone/predict", json={"instances": [ROW]}).status_code == 200
        r = client.post("/v1/models/gone/explain", json={"instances": [ROW]})
        assert r.status_code == 409 and "no trained model" in r.json()["detail"]


# --------------------------------------------------------------------------------------------- bad input
def test_bad_explain_input_is_a_clear_user_error(tables, in_tmp, capsys):
    run = str(tables["mlp"])
    msg = user_error(capsys, "explain", run, "--input", '{"x0": 1.0}')
    assert "does not match the model's schema" in msg and "missing feature" in msg and "x3" in msg
    msg = user_error(capsys, "explain", run, "--input", json.dumps({**ROW, "x2": "lots"}))
    assert "column 'x2'" in msg and "number" in msg
    msg = user_error(capsys, "explain", run, "--input", "{not json")
    assert "does not parse" in msg
    pd.DataFrame([{"x0": 1.0, "x1": 2.0}]).to_csv("partial.csv", index=False)
    msg = user_error(capsys, "explain", run, "--input", "partial.csv")
    assert "missing feature columns" in msg and "x3" in msg
    msg = user_error(capsys, "explain", run, "--method", "shap")
    assert "unknown explain method 'shap'" in msg and "gradcam, ig, lime, permutation" in msg
    msg = user_error(capsys, "explain", run, "--method", "gradcam")
    assert "does not apply" in msg and "image" in msg and "permutation, ig or lime" in msg
    msg = user_error(capsys, "explain", str(tables["lgb"]), "--method", "ig")
    assert "does not apply" in msg and "LightGBM" in msg and "lime" in msg
    msg = user_error(capsys, "explain", run, "--input", json.dumps(ROW), "--method", "permutation")
    assert "needs labelled rows" in msg and "'y'" in msg
    msg = user_error(capsys, "explain", run, "--class", "maybe")
    assert "'maybe'" in msg and "['neg', 'pos']" in msg
    msg = user_error(capsys, "explain", run, "--repeats", "0")
    assert "--repeats must be at least 1" in msg

    no_weights = in_tmp / "no-weights"
    shutil.copytree(run, no_weights)
    (no_weights / "model.safetensors").unlink()
    msg = user_error(capsys, "explain", no_weights)
    assert "no trained model" in msg


def test_missing_captum_names_the_explain_extra(tables, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "captum.attr", None)  # import captum.attr -> ImportError
    msg = user_error(capsys, "explain", tables["mlp"], "-q")
    assert "forgeml[explain]" in msg and "captum" in msg


def test_lime_explains_a_lightgbm_regression_in_target_units(tmp_path):
    """LightGBM gives a regression's outputs as [N]; explaining one used to fail in Captum ("Cannot choose target
    column with output shape [100]"), from the CLI's --input rows and from the server alike. y = 3 * x3 + noise."""
    from forgeml.explain.local import explain_local
    from forgeml.run import load

    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(400, 4)), columns=[f"x{i}" for i in range(4)])
    df["y"] = 3 * df["x3"] + rng.normal(scale=0.1, size=400)
    df.to_csv(tmp_path / "reg.csv", index=False)
    model = load(_train(tmp_path, "reg", tmp_path / "reg.csv", {"name": "lightgbm", "n_estimators": 60}, "y", {"x3": "numeric"}))
    rows = df.drop(columns="y").iloc[:5]
    local = explain_local(model, model.preprocessor.transform(rows), rows, "lime", n_samples=200)
    assert local.values.shape == (5, 4)
    assert (np.abs(local.values).argmax(axis=1) == 3).all()  # x3 decides, in every row
