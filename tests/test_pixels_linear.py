"""pixels_linear: logistic/ridge regression on the pixels, images' baseline and a servable learner: auto keeps the
better of it and the CNN, a CNN that loses to it says how to keep it, its files reload without pickle, the ONNX
graph and the server agree with predict, and explain runs Integrated Gradients on it (Grad-CAM is refused)."""
import json

import numpy as np
import pytest
from conftest import assert_auto_kept_the_best, assert_served_like_predict, fast_train, user_error
from PIL import Image

from forgeml import api
from forgeml.data.bundled import load_bundled

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """600 real digits as an image folder (one sub-folder per class, 8-bit grayscale PNGs)."""
    df, _ = load_bundled("digits")
    root = tmp_path_factory.mktemp("pixels") / "digits"
    for i, (img, label) in enumerate(zip(df["image"][:600], df["label"][:600])):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray((img * 255 / 16).astype(np.uint8), mode="L").save(root / str(label) / f"{i}.png")
    return root


def _train(folder, name, model, **train):
    return api.train({"name": name, "runs_dir": str(folder.parent / "runs"), "data": {"source": str(folder)},
                      "model": {"name": model}, "tracking": {"uri": "none"}, "train": fast_train(**train)}, quiet=True)


@pytest.fixture(scope="module")
def linear(folder):
    return _train(folder, "linear", "pixels_linear")


def test_it_learns_the_digits_and_is_exactly_scikit_learns_logistic_regression(linear):
    from sklearn.linear_model import LogisticRegression

    assert linear.manifest["model"]["file"] == "model.pixels_linear.npz"
    assert linear.metrics["test"]["accuracy"] > 0.9
    with np.load(linear.run_dir / "model.pixels_linear.npz", allow_pickle=False) as f:
        coef, intercept = f["coef"], f["intercept"]
    model = api.load(linear.run_dir)
    rows = api.test_rows(model)
    x = model.preprocessor.transform(rows)["image"].reshape(len(rows), -1)
    assert coef.shape == (10, x.shape[1]) == (10, 64) and intercept.shape == (10,)
    # the same fit on the training split's pixels, as scikit-learn makes it: the same probabilities
    train_rows = model.task.split_rows(api.run_config(linear.run_dir))["train"]
    y = model.task.encode(train_rows[model.manifest["target"]["name"]])
    pixels = model.preprocessor.transform(train_rows)["image"].reshape(len(y), -1).astype(np.float64)
    ref = LogisticRegression(max_iter=2000, random_state=0).fit(pixels, y)
    ours = model.predict(rows).filter(like="proba_").to_numpy()
    assert np.abs(ours - ref.predict_proba(x.astype(np.float64))).max() < 1e-6


def test_the_onnx_graph_and_the_server_agree_with_predict(linear, folder):
    pytest.importorskip("fastapi")
    info = api.export(linear.run_dir)
    assert info["parity"]["max_abs_diff"] < 1e-5 and info["outputs"][0]["name"] == "probabilities"
    paths = sorted((folder / "7").glob("*.png"))[:3]
    instances = [{"image": np.asarray(Image.open(p)).tolist()} for p in paths]
    assert_served_like_predict(linear.run_dir, instances, 1e-5, predict_input=[str(p) for p in paths])


def test_auto_keeps_the_better_of_the_cnn_and_pixels_linear(folder):
    assert_auto_kept_the_best(_train(folder, "auto", "auto", epochs=2), ["cnn", "pixels_linear"], "pixels_linear")


def test_a_cnn_that_loses_to_it_says_how_to_keep_it(folder):
    said = []
    result = api.train({"name": "weak", "runs_dir": str(folder.parent / "runs"), "data": {"source": str(folder)},
                        "model": {"name": "cnn", "channels": [4]}, "tracking": {"uri": "none"},
                        "train": fast_train(epochs=1, lr=1e-4)}, say=said.append)
    base = result.manifest["choice"]["baseline"]
    assert base["name"] == "pixels_linear" and base["verdict"] == "baseline_better" and base["servable"]
    assert any("train with --model pixels_linear to keep it" in line for line in said)


def test_explain_runs_integrated_gradients_and_refuses_grad_cam(linear, capsys):
    result = api.explain(linear.run_dir, quiet=True, per_class=1)
    assert result["methods"] == ["ig"] and result["kind"] == "regions"
    explained = json.loads((linear.run_dir / "explanations" / "explanations.json").read_text())["instances"]
    assert len(explained) == 10
    for rec in explained:
        heat = np.array(rec["ig"]["heatmap"])
        assert heat.shape == (8, 8) and np.abs(heat).sum() > 0
        assert abs(rec["ig"]["delta"]) < 0.02  # completeness: the pixels' attributions add up to p(x) - p(black)
    err = user_error(capsys, "explain", str(linear.run_dir), "--method", "gradcam")
    assert "does not apply" in err and "Use ig" in err
