"""The generation family: a GAN and a VAE draw images of exactly the data's shape (8x8 digits, an image folder's size
after resizing), scored in forgeml's own classifier features beside a Gaussian-mixture baseline; forgeml generate
writes exactly the images asked for and refuses bad input with one clear message; the generator exports to ONNX
and is served on its own route; a diverging GAN stops with a message and keeps its last finite checkpoint."""
from __future__ import annotations

import json

import numpy as np
import pytest

from forgeml import api

from conftest import cli, user_error

TINY = {"epochs": 2, "batch_size": 128, "early_stopping": None, "threads": 1}  # one thread: tiny nets, a shared CPU


def train_generation(root, name: str, model: str, source: str = "bundled:digits", conditional: bool = False, **train):
    return api.train({"name": name, "runs_dir": str(root), "data": {"source": source},
                      "task": {"name": "generation", "conditional": conditional, "latent_dim": 8},
                      "model": {"name": model, "width": 8, **({"d_width": 8} if model == "gan" else {})},
                      "train": {**TINY, **train}, "tracking": {"uri": "none"}}, quiet=True)


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory):
    return train_generation(tmp_path_factory.mktemp("runs"), "digits_gan", "gan")


@pytest.fixture(scope="module")
def cvae_run(tmp_path_factory):
    return train_generation(tmp_path_factory.mktemp("runs"), "digits_cvae", "vae", conditional=True)


@pytest.mark.parametrize("shape", [[1, 8, 8], [3, 12, 10], [1, 13, 13], [3, 28, 28]])
@pytest.mark.parametrize("name", ["gan", "vae"])
def test_networks_generate_exactly_the_data_shape(name, shape):
    import torch

    from forgeml.config import params_class
    from forgeml.models import get_model

    out_dim = {"latent_dim": 4, "classes": 3, "mean": [0.5] * shape[0], "std": [0.25] * shape[0]}
    net = get_model(name).build(params_class(name)(width=4), {"image": shape}, out_dim).eval()
    x = net.generate(torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1]))
    assert list(x.shape) == [5, *shape]
    pixels = net.to_pixels(x)
    assert pixels.min() >= 0 and pixels.max() <= 1
    losses = dict(net.train().training_losses({"image": torch.randn(6, *shape), "label": torch.tensor([0, 1, 2] * 2)}))
    assert set(losses) == set(net.parameter_groups()) and all(torch.isfinite(v) for v in losses.values())


def test_metrics_behave():
    from forgeml.evaluate.generative import frechet_distance, kid, manifold_scores

    rng = np.random.default_rng(0)
    real = rng.normal(size=(400, 16)) @ rng.normal(size=(16, 16))
    assert frechet_distance(real, real) == pytest.approx(0.0, abs=1e-6)
    noise = rng.normal(size=(400, 16)) * 3 + 2
    assert frechet_distance(real, noise) > 10
    halves = kid(real[:200], real[200:]), kid(real, noise)
    assert abs(halves[0]) < 0.1 * halves[1]
    same = manifold_scores(real, real)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    far = manifold_scores(real, noise + 100)
    assert far["precision"] == far["recall"] == far["coverage"] == 0.0


def test_gan_run_scores_its_samples_beside_the_baseline(gan_run):
    m, run = gan_run.metrics, gan_run.run_dir
    assert m["model"] == "gan" and m["baseline"]["name"] == "gaussian_mixture"
    for scores in (m["test"], m["baseline"]["test"]):
        assert all(np.isfinite(scores[k]) for k in ("frechet_distance", "kid", "precision", "recall", "coverage"))
    assert m["test"]["n"] == m["baseline"]["test"]["n"] == gan_run.manifest["data"]["rows"]["test"]
    assert [h["val_loss"] for h in m["history"]] and all(np.isfinite(h["val_loss"]) for h in m["history"])
    for h in m["history"]:  # both players' losses are logged; train_loss stays the first (the discriminator's)
        assert np.isfinite(h["train_loss_g"]) and h["train_loss"] == pytest.approx(h["train_loss_d"])
    ckpt = json.loads((run / "checkpoints" / "gan" / "last.json").read_text())
    assert set(ckpt["optimizers"]) == {"d", "g"}  # both optimizers are checkpointed (resume keeps them)
    for plot in ("samples", "real_images", "samples_by_epoch", "interpolation"):
        assert (run / "plots" / f"{plot}.png").is_file() and plot in m["plots"]
    assert sorted(p.name for p in (run / "plots" / "epochs").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    assert 'alt="interpolation"' in (run / "report.html").read_text()
    # what a client sends: the route's fields, not an image
    assert [f["name"] for f in gan_run.manifest["signature"]["inputs"]] == ["n", "seed"]


def test_an_interrupted_gan_resumes_both_optimizers(tmp_path):
    class Stop(Exception):
        pass

    def stop_after_first_epoch(name, logs):
        if logs["epoch"] == 0:
            raise Stop

    config = {"name": "resumed", "runs_dir": str(tmp_path), "data": {"source": "bundled:digits"},
              "task": {"name": "generation", "latent_dim": 8}, "model": {"name": "gan", "width": 8, "d_width": 8},
              "train": TINY, "tracking": {"uri": "none"}}
    with pytest.raises(Stop):
        api.train(config, quiet=True, on_epoch=stop_after_first_epoch)
    ckpt = json.loads((tmp_path / "resumed" / "checkpoints" / "gan" / "last.json").read_text())
    assert ckpt["epoch"] == 0 and set(ckpt["optimizers"]) == {"d", "g"}
    assert all(ckpt["optimizers"][k]["state"] for k in ("d", "g"))  # Adam's moments of both, not just their settings
    result = api.train(config, resume=True, quiet=True)
    history = result.metrics["history"]
    assert [h["epoch"] for h in history] == [0, 1] and history[0] == ckpt["history"][0]
    assert sorted(p.name for p in (result.run_dir / "plots" / "epochs").iterdir()) == ["epoch_002.png"]


def test_generate_writes_exactly_n_images_of_the_data_size(gan_run, tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "samples"
    assert cli("generate", str(gan_run.run_dir), "-n", "5", "--seed", "3", "-o", str(out)) == 0
    assert "wrote 5 images (8x8, 1 channel)" in capsys.readouterr().out
    files = sorted(out.glob("sample_*.png"))
    assert len(files) == 5 and (out / "grid.png").is_file()
    assert all(Image.open(f).size == (8, 8) for f in files)
    again = api.generate(gan_run.run_dir, 5, seed=3, output=tmp_path / "again")
    assert all(f.read_bytes() == g.read_bytes() for f, g in zip(files, again["files"]))  # a seed replays its images
    # an -o holding files needs --overwrite; with it, the old samples are replaced, not mixed with the new
    message = user_error(capsys, "generate", gan_run.run_dir, "-n", "2", "-o", out)
    assert "already holds 6 file(s)" in message and "--overwrite" in message
    assert cli("generate", str(gan_run.run_dir), "-n", "2", "-o", str(out), "--overwrite") == 0
    assert len(list(out.glob("sample_*.png"))) == 2


def test_generate_refuses_bad_input(gan_run, cvae_run, tmp_path, capsys):
    assert "from 1 to 10000, got 0" in user_error(capsys, "generate", gan_run.run_dir, "-n", "0", "-o", tmp_path / "a")
    message = user_error(capsys, "generate", cvae_run.run_dir, "--label", "11", "-o", tmp_path / "b")
    assert "label '11' is not a class this model draws; it knows: 0, 1, 2" in message
    assert "trained unconditionally" in user_error(capsys, "generate", gan_run.run_dir, "--label", "3", "-o", tmp_path / "c")
    other = tmp_path / "other_run"  # a run of another family
    other.mkdir()
    manifest = {**gan_run.manifest, "task": "classification"}
    (other / "manifest.json").write_text(json.dumps(manifest))
    assert "is a classification run; forgeml generate draws images from generation runs" in user_error(
        capsys, "generate", other, "-o", tmp_path / "d")
    assert not any((tmp_path / p).exists() for p in "abcd")  # nothing written on a refusal


def test_conditional_model_draws_the_asked_class(cvae_run, tmp_path):
    m = cvae_run.metrics
    assert 0 <= m["test"]["class_accuracy"] <= 1 and set(m["test"]["class_accuracy_per_class"]) == {str(i) for i in range(10)}
    assert m["baseline"]["test"]["class_accuracy"] is not None  # the mixture is conditional too: one per class
    result = api.generate(cvae_run.run_dir, 4, label=3, seed=0, output=tmp_path / "threes")
    assert result["labels"] == ["3"] * 4 and all(f.name.endswith("_3.png") for f in result["files"])


def test_the_vae_draws_from_a_gaussian_fitted_to_its_codes(cvae_run):
    """FittedPrior's running statistics recover the codes' mean and covariance (per class when conditional), a run's
    prior moved away from N(0, I), and weights saved before the prior existed load as N(0, I)."""
    import torch

    from forgeml.models.vae import VAE, FittedPrior
    from forgeml.run import load

    torch.manual_seed(0)
    mix, shift = torch.tensor([[2.0, 0.0], [0.5, 1.0]]), torch.tensor([1.0, -1.0])
    prior = FittedPrior(2, 0, momentum=0.5)
    for _ in range(40):
        prior.update(torch.randn(512, 2) @ mix.T + shift, None)
    drawn = prior(torch.randn(50_000, 2))
    assert torch.allclose(drawn.mean(0), shift, atol=0.1) and torch.allclose(torch.cov(drawn.T), mix @ mix.T, atol=0.25)
    per_class = FittedPrior(2, 3, momentum=0.5)
    for _ in range(20):
        label = torch.randint(0, 3, (300,))
        per_class.update(torch.randn(300, 2) * 0.1 + 5 * label[:, None].float(), label)
    assert torch.allclose(per_class(torch.zeros(3, 2), torch.arange(3)), 5 * torch.arange(3.0)[:, None].expand(3, 2), atol=0.1)

    scale = load(cvae_run.run_dir).network.prior.scale
    assert scale.shape == (10, 8, 8) and not torch.allclose(scale, torch.eye(8).expand(10, 8, 8))
    old = VAE([1, 8, 8], 4, 0, [0.5], [0.5], 8, 0.25)
    state = {k: v for k, v in old.state_dict().items() if not k.startswith("prior.")}
    again = VAE([1, 8, 8], 4, 0, [0.5], [0.5], 8, 0.25)
    again.load_state_dict(state)  # strict: the missing prior is filled in as N(0, I)
    assert torch.equal(again.prior.scale[0], torch.eye(4)) and not again.prior.mean.any()


def test_evaluate_scores_a_run_again_as_training_scored_it(cvae_run, capsys):
    """forgeml evaluate retrains the (deterministic) scoring classifier from the run's config and draws from the test
    split's fixed noise: the scores equal the run's own test metrics."""
    again = api.evaluate(cvae_run.run_dir)
    for key, value in cvae_run.metrics["test"].items():
        assert again[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
    assert cli("evaluate", str(cvae_run.run_dir)) == 0
    out = capsys.readouterr().out
    assert "test split of bundled:digits" in out and "frechet" in out
    assert "drop --data" in user_error(capsys, "evaluate", cvae_run.run_dir, "--data", "bundled:digits")


def test_image_folder_of_mixed_sizes(tmp_path):
    """RGB images mostly 12x12, some 10x14: all resized to the most common size, which the VAE draws."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(24):
            size = (14, 10) if i % 6 == 0 else (12, 12)
            pixels = (rng.random((size[1], size[0], 3)) * (80 if cls == "a" else 255)).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "imgs" / cls / f"{i}.png")
    run = train_generation(tmp_path / "runs", "folder", "vae", source=str(tmp_path / "imgs"), epochs=1)
    assert run.manifest["model"]["input_shapes"]["image"] == [3, 12, 12]
    result = api.generate(run.run_dir, 3, seed=0, output=tmp_path / "out")
    assert result["shape"] == [3, 12, 12]
    assert all(Image.open(f).size == (12, 12) and Image.open(f).mode == "RGB" for f in result["files"])


def test_export_onnx_and_serve(cvae_run):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("fastapi")
    import base64
    import io

    import onnxruntime as ort
    from fastapi.testclient import TestClient
    from PIL import Image

    from forgeml.serve.app import create_app
    from forgeml.serve.registry import build_registry

    info = api.export(cvae_run.run_dir)
    assert [i["name"] for i in info["inputs"]] == ["z", "label"] and info["parity"]["max_abs_diff"] < 1e-4
    session = ort.InferenceSession(str(cvae_run.run_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    (image,) = session.run(None, {"z": np.zeros((7, 8), np.float32), "label": np.arange(7, dtype=np.int64)})
    assert image.shape == (7, 1, 8, 8) and 0 <= image.min() and image.max() <= 1

    with TestClient(create_app(build_registry([f"digits={cvae_run.run_dir}"]))) as client:
        body = client.post("/v1/models/digits/generate", json={"n": 3, "label": "7", "seed": 1}).json()
        assert body["labels"] == ["7"] * 3 and body["shape"] == [1, 8, 8] and body["seed"] == 1
        assert Image.open(io.BytesIO(base64.b64decode(body["images"][0]))).size == (8, 8)
        bad = client.post("/v1/models/digits/generate", json={"n": 2, "label": "x"})
        assert bad.status_code == 422 and "not a class this model draws" in bad.text
        assert client.post("/v1/models/digits/predict", json={}).status_code == 409
        listed = client.get("/v1/models")  # the listing the web page builds its form from
        assert listed.status_code == 200
        (model,) = listed.json()["models"]
        assert model["route"] == "generate" and model["example"] == {"n": 8, "seed": 0, "label": "0"}


def test_diverging_gan_stops_and_keeps_the_last_finite_checkpoint(tmp_path, monkeypatch):
    import torch

    from forgeml.errors import RunError
    from forgeml.models.gan import GAN

    steps = {"n": 0}
    finite = GAN.training_losses

    def diverging(self, batch):  # the second epoch's first step turns NaN (10 batches of 128 per epoch)
        for name, loss in finite(self, batch):
            steps["n"] += 1
            yield name, loss * float("nan") if steps["n"] > 20 else loss

    monkeypatch.setattr(GAN, "training_losses", diverging)
    with pytest.raises(RunError, match="loss turned nan.*last checkpoint.*lower learning rate"):
        train_generation(tmp_path, "nan", "gan", epochs=3)
    ckpt = tmp_path / "nan" / "checkpoints" / "gan"
    assert json.loads((ckpt / "last.json").read_text())["epoch"] == 0
    from forgeml.artifacts import load_tensors

    assert all(torch.isfinite(t).all() for t in load_tensors(ckpt / "last.safetensors").values() if t.is_floating_point())
