"""From-scratch CNN and BLEU entries of the playbook: each row is what its run measured (recomputed where it is cheap)
and the verdict is what the rows say."""
import json

import numpy as np
import pytest


def test_cnn_from_scratch_gradients_match_autograd_and_the_verdict_follows_the_accuracies(ran):
    from forgeml.playbook import cnn_scratch

    folder, ev = ran["cnn-from-scratch"]
    by_name = {r[0]: r for r in ev.rows}
    grads = [float(r[2]) for r in ev.rows if r[0].startswith(("d loss", "every gradient"))]
    assert len(grads) == len(cnn_scratch.NAMES) + 1 and max(grads) <= 1e-6
    mine = by_name["NumPy CNN, SGD + momentum, 2 epochs"][2]
    theirs = by_name["the same CNN in torch, same start and batches"][2]
    assert float(by_name["NumPy vs torch weights after training"][2]) <= 1e-9  # the same trajectory, to rounding
    forgeml_row = by_name["forgeml cnn (residual, AdamW), 2 epochs"]
    metrics = json.loads((folder / "runs" / "cnn-forgeml" / "metrics.json").read_text())
    assert forgeml_row[2] == round(metrics["test"]["accuracy"], 4)
    # forgeml tested on the split the NumPy CNN is tested on: 360 images, the same count per digit
    y_test = cnn_scratch.digits_split()["test"][1]
    assert np.array(metrics["test"]["confusion_matrix"]).sum(axis=1).tolist() == np.bincount(y_test).tolist()
    assert ev.supported == (max(grads) <= 1e-6 and abs(mine - theirs) <= 0.02 and abs(mine - forgeml_row[2]) <= 0.03)
    assert ev.plots == ["cnn-from-scratch.png"]


def test_numpy_cnn_layers_match_torch_on_their_own():
    """Each layer's backward pass is the adjoint of its forward pass: <dout, f(x)> differentiated by torch."""
    import torch

    from forgeml.playbook.cnn_scratch import col2im, conv, conv_backward, pool, pool_backward

    rng = np.random.default_rng(1)
    x, W, b = rng.normal(size=(3, 2, 6, 6)), rng.normal(size=(4, 2, 3, 3)), rng.normal(size=4)
    x[0, 0, :2, :2] = 1.0  # a pooling window of equal values: the first one takes the gradient, as in torch
    out, cols = conv(x, W, b)
    tx, tW, tb = (torch.tensor(v, requires_grad=True) for v in (x, W, b))
    ref = torch.nn.functional.conv2d(tx, tW, tb, padding=1)
    assert np.abs(out - ref.detach().numpy()).max() < 1e-12
    dout = rng.normal(size=out.shape)
    (ref * torch.from_numpy(dout)).sum().backward()
    dx, dW, db = conv_backward(dout, cols, W)
    for mine, theirs in ((dx, tx), (dW, tW), (db, tb)):
        assert np.abs(mine - theirs.grad.numpy()).max() < 1e-12
    assert col2im(cols, 2).shape == x.shape
    pooled, arg = pool(x)
    tx = torch.tensor(x, requires_grad=True)
    ref = torch.nn.functional.max_pool2d(tx, 2)
    assert np.array_equal(pooled, ref.detach().numpy())
    dout = rng.normal(size=pooled.shape)
    (ref * torch.from_numpy(dout)).sum().backward()
    assert np.array_equal(pool_backward(dout, arg), tx.grad.numpy())


def test_bleu_rows_are_sacrebleu_scores_of_its_candidates_and_the_verdict_what_they_say(ran):
    sacrebleu = pytest.importorskip("sacrebleu")
    from forgeml.playbook import bleu

    _, ev = ran["bleu"]
    refs = bleu.references(fast=True)
    made = bleu.candidates(refs)
    assert len(refs) == 150 and all(len(v) == len(refs) for v in made.values())
    for ref, dropped, shuffled in zip(refs, made[bleu.DROPPED], made[bleu.SHUFFLED]):
        assert sorted(shuffled.split()) == sorted(ref.split())
        assert len(dropped.split()) == len(ref.split()) - bleu.DROP
    rows = {(r[0], r[2]): r for r in ev.rows}
    version = sacrebleu.__version__
    for kind, args in ((bleu.SHUFFLED, {}), (bleu.PARAPHRASE, {}), (bleu.DROPPED, {}), (bleu.DROPPED, {"tokenize": "char"})):
        score = sacrebleu.corpus_bleu(made[kind], [refs], **args)
        row = rows[(kind, f"tok:{args.get('tokenize', '13a')} case:mixed")]
        assert row[3:7] == [round(score.score, 2), round(score.precisions[0], 2), round(score.precisions[3], 2),
                            round(score.bp, 4)]
        assert row[8] == round(sacrebleu.corpus_chrf(made[kind], [refs]).score, 2)
    lower = [r.lower() for r in refs]
    assert rows[("copy, lowercased", "tok:13a case:lc")][3] == round(sacrebleu.corpus_bleu(lower, [refs], lowercase=True).score, 2)
    assert rows[("copy, lowercased", "tok:13a case:mixed")][3] < 100  # the casing in the signature changes the score
    sentence = np.mean([sacrebleu.sentence_bleu(h, [r]).score for h, r in zip(made[bleu.SHUFFLED], refs)])
    assert rows[(bleu.SHUFFLED, "tok:13a case:mixed")][7] == round(float(sentence), 2)
    assert rows[("copy", "tok:13a case:mixed")][3] == 100.0
    assert f"version:{version}" in ev.finding["en"]
    shuffled, para, dropped = (rows[(k, "tok:13a case:mixed")] for k in (bleu.SHUFFLED, bleu.PARAPHRASE, bleu.DROPPED))
    copy = rows[("copy", "tok:13a case:mixed")]
    assert ev.supported == (shuffled[4] == 100 and shuffled[3] < copy[3] / 2 and para[3] < dropped[3])


def test_the_synonym_paraphrase_keeps_case_and_punctuation():
    from forgeml.playbook.bleu import sentences, synonyms

    assert synonyms("GREAT people, very big! I'm sure.") == "TERRIFIC folks, really large! I am sure."
    assert sentences("One. Two! Three?") == ["One.", "Two!", "Three?"]
