"""Anomaly detectors (learners): they find real anomalies, save and load without pickle, and export to ONNX with the
same scores. Data: breast_cancer (benign = normal, malignant = anomalies), standardized on the training rows."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch

# importing the modules registers the detectors (until the lead adds them to LEARNERS' builtin list)
import forgeml.models.autoencoder
import forgeml.models.deep_svdd
import forgeml.models.detectors  # noqa: F401
from forgeml.models import LEARNERS
from forgeml.models.autoencoder import AutoencoderParams
from forgeml.models.deep_svdd import CENTER_EPS, DeepSVDDParams
from forgeml.models.detectors import (
    IsolationForestParams,
    LOFParams,
    detector_matrix,
    matrix_width,
)
from forgeml.models.inference import predict_raw


def fit_sklearn(name: str, train: dict, shapes: dict, seed: int = 0, n_estimators: int = 200):
    params = IsolationForestParams(n_estimators=n_estimators) if name == "isolation_forest" else LOFParams()
    return LEARNERS.get(name).fit(params, None, train, None, {}, None, seed, 1, shapes=shapes)


def fit_torch(name: str, train: dict, shapes: dict, epochs: int = 30, lr: float = 1e-3, seed: int = 0):
    torch.manual_seed(seed)
    params = AutoencoderParams() if name == "autoencoder" else DeepSVDDParams()
    model = LEARNERS.get(name).build(params, shapes, None)
    if hasattr(model, "init_center"):
        model.init_center(train)
    tensors = {k: torch.from_numpy(v) for k, v in train.items()}
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(tensors["numeric"]), generator=gen).split(64):
            loss = model.training_loss({k: v[idx] for k, v in tensors.items()})
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


pytestmark = pytest.mark.usefixtures("one_thread")  # small networks: one thread is faster here


@pytest.fixture(scope="module")
def cancer():
    """Training rows: 60 % of the benign tumours. Test rows: the other benign ones + 40 malignant (~22 %)."""
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    rng = np.random.default_rng(0)
    benign, malignant = rng.permutation(np.flatnonzero(y == 1)), rng.choice(np.flatnonzero(y == 0), 40, replace=False)
    cut = int(0.6 * len(benign))
    train, test = benign[:cut], np.r_[benign[cut:], malignant]
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    enc = lambda rows: {"numeric": ((x[rows] - mean) / std).astype(np.float32)}
    shapes = {"numeric": x.shape[1], "categorical": [], "image": None}
    return enc(train), enc(test), np.r_[np.zeros(len(benign) - cut), np.ones(40)], shapes


@pytest.fixture(scope="module")
def mixed():
    """Numeric, categorical (3 and 5 levels, some unseen codes 0) and 1x4x4 image inputs."""
    rng = np.random.default_rng(1)
    n = 300
    cat = np.stack([rng.integers(1, 4, n), rng.integers(0, 6, n)], axis=1).astype(np.int64)
    arrays = {"numeric": rng.normal(size=(n, 3)).astype(np.float32), "categorical": cat,
              "image": rng.normal(size=(n, 1, 4, 4)).astype(np.float32)}
    return arrays, {"numeric": 3, "categorical": [4, 6], "image": [1, 4, 4]}


def test_detectors_are_registered_with_their_tags():
    for name in ("isolation_forest", "lof"):
        learner = LEARNERS.get(name)
        assert {"detector", "own_files"} <= learner.tags and "torch" not in learner.tags
        assert learner.accepts == {"numeric", "categorical", "datetime", "image"} and learner.file == "model.skops"
    for name in ("autoencoder", "deep_svdd"):
        learner = LEARNERS.get(name)
        assert {"detector", "torch"} <= learner.tags and learner.accepts == {"numeric", "categorical", "image"}
    assert set(LEARNERS.tagged("detector")) >= {"isolation_forest", "lof", "autoencoder", "deep_svdd"}
    with pytest.raises(ValueError):
        LOFParams(n_neighbours=5)  # extra keys are refused


def test_detector_matrix_one_hot_and_flattened_images(mixed):
    arrays, shapes = mixed
    m = detector_matrix(arrays, shapes)
    assert m.dtype == np.float64 and m.shape == (300, 3 + 3 + 5 + 16) == (300, matrix_width(shapes))
    np.testing.assert_array_equal(m[:, :3], arrays["numeric"])
    second = m[:, 6:11]
    codes = arrays["categorical"][:, 1]
    assert (second.sum(axis=1) == (codes > 0)).all()  # code 0 (unseen) -> all zeros
    assert (second[codes > 0].argmax(axis=1) == codes[codes > 0] - 1).all()
    np.testing.assert_array_equal(m[:, 11:], arrays["image"].reshape(300, 16))
    # the torch detectors see the very same columns
    model = LEARNERS.get("autoencoder").build(AutoencoderParams(), shapes, None)
    flat = model.inputs({k: torch.from_numpy(v) for k, v in arrays.items()})
    np.testing.assert_array_equal(flat.numpy(), m.astype(np.float32))


@pytest.mark.parametrize("name", ["isolation_forest", "lof", "autoencoder", "deep_svdd"])
def test_detector_finds_malignant_tumours(cancer, name):
    from sklearn.metrics import roc_auc_score

    train, test, y_test, shapes = cancer
    if name in ("isolation_forest", "lof"):
        scores = LEARNERS.get(name).raw(fit_sklearn(name, train, shapes), test, None)
    else:
        scores = predict_raw(fit_torch(name, train, shapes, lr=1e-3 if name == "autoencoder" else 1e-4), test,
                             device=torch.device("cpu"))
    assert scores.shape == (len(y_test),) and scores.dtype == np.float64
    assert roc_auc_score(y_test, scores) > 0.8  # higher = more anomalous


@pytest.mark.parametrize("name", ["isolation_forest", "lof"])
def test_sklearn_detectors_save_without_pickle_and_export_to_onnx(tmp_path, cancer, mixed, name):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("skl2onnx")
    learner = LEARNERS.get(name)
    for train, rows, shapes in ((cancer[0], cancer[1], cancer[3]), (mixed[0], mixed[0], mixed[1])):
        est = fit_sklearn(name, train, shapes, n_estimators=25)  # skops writes 200 trees in seconds: keep it quick
        before = learner.raw(est, rows, None)
        learner.save(est, tmp_path)
        path = tmp_path / learner.file
        assert zipfile.is_zipfile(path) and path.read_bytes()[:1] != b"\x80"  # a skops zip, not a pickle stream
        np.testing.assert_array_equal(learner.raw(learner.load(tmp_path), rows, None), before)

        core = learner.export_core(est, shapes, 17)
        assert [i.name for i in core.graph.input] == ["features"] and [o.name for o in core.graph.output] == ["score"]
        session = ort.InferenceSession(core.SerializeToString(), providers=["CPUExecutionProvider"])
        (out,) = session.run(None, {"features": detector_matrix(rows, shapes).astype(np.float32)})
        assert out.shape == (len(before), 1)
        np.testing.assert_allclose(out[:, 0], before, atol=1e-4)


def test_skops_load_refuses_types_it_does_not_expect(tmp_path):
    import skops.io as sio
    from sklearn.ensemble import IsolationForest

    from forgeml.errors import RunError

    rng = np.random.default_rng(0)
    sio.dump(IsolationForest(n_estimators=5, random_state=0).fit(rng.normal(size=(50, 2))), tmp_path / "model.skops")
    with pytest.raises(RunError, match="sklearn.tree._tree.Tree"):
        LEARNERS.get("lof").load(tmp_path)  # an IsolationForest's tree is not among LOF's trusted types


def test_autoencoder_feature_errors_explain_its_score(cancer, mixed):
    train, test, y_test, shapes = cancer
    model = fit_torch("autoencoder", train, shapes)
    rows = {"numeric": torch.from_numpy(test["numeric"][y_test == 0][:20].copy())}
    with torch.no_grad():
        errors, score = model.feature_errors(rows), model(rows)
        assert errors.shape == (20, shapes["numeric"])
        torch.testing.assert_close(errors.sum(dim=1) / model.inputs.width, score)
        for col in (0, 7, 21):
            bad = {"numeric": rows["numeric"].clone()}
            bad["numeric"][:, col] += 8.0  # eight standard deviations off in one column
            assert (model.feature_errors(bad).argmax(dim=1) == col).all()
            assert (model(bad) > score).all()
    arrays, mshapes = mixed  # one error per numeric column, per categorical column, per pixel
    model = LEARNERS.get("autoencoder").build(AutoencoderParams(), mshapes, None).eval()
    batch = {k: torch.from_numpy(v) for k, v in arrays.items()}
    with torch.no_grad():
        errors = model.feature_errors(batch)
        assert errors.shape == (300, 3 + 2 + 16)
        torch.testing.assert_close(errors.sum(dim=1) / model.inputs.width, model(batch))
        assert model.training_loss(batch).ndim == 0


def test_deep_svdd_center_is_set_from_the_data_and_saved_with_the_weights(tmp_path, cancer):
    from forgeml.artifacts import load_tensors, save_tensors

    train, test, _, shapes = cancer
    model = LEARNERS.get("deep_svdd").build(DeepSVDDParams(), shapes, None)
    with pytest.raises(RuntimeError, match="init_center"):
        model.training_loss({"numeric": torch.from_numpy(train["numeric"][:8])})
    model.init_center(train)
    c = model.center.clone()
    assert (c.abs() >= CENTER_EPS - 1e-7).all()  # no coordinate near 0 (the eps fix) ...
    assert (c.abs() > CENTER_EPS + 1e-3).sum() > len(c) // 2  # ... and most of it set by the data, not by the fix
    with torch.no_grad():
        mean_rep = model.represent({"numeric": torch.from_numpy(train["numeric"])}).mean(dim=0)
    big = mean_rep.abs() >= CENTER_EPS
    torch.testing.assert_close(c[big], mean_rep[big])

    save_tensors(tmp_path / "model.safetensors", model.state_dict())
    fresh = LEARNERS.get("deep_svdd").build(DeepSVDDParams(), shapes, None)
    assert not fresh.has_center
    fresh.load_state_dict(load_tensors(tmp_path / "model.safetensors"))
    torch.testing.assert_close(fresh.center, c)
    np.testing.assert_array_equal(predict_raw(fresh, test), predict_raw(model, test))
