"""The trust and leakage entries of the playbook: each row is what its runs (metrics.json, manifests, the explanation
file) say, and each verdict is the claim's condition computed from the rows."""
import json

import numpy as np
import pandas as pd
import pytest
import yaml


def _metrics(folder, run):
    return json.loads((folder / "runs" / run / "metrics.json").read_text())


def _manifest(folder, run):
    return json.loads((folder / "runs" / run / "manifest.json").read_text())


def _config(folder, run):
    return yaml.safe_load((folder / "runs" / run / "config.yaml").read_text())


def test_explain_model_rows_are_its_explanation_and_its_retrains(ran):
    folder, ev = ran["explain-model"]
    everything, *columns = ev.rows
    auc = _metrics(folder, "explain-all")["test"]["roc_auc"]
    assert everything[4] == round(auc, 4) and everything[5] == 0.0
    result = json.loads((folder / "explanations" / "explanations.json").read_text())
    assert result["model"] == "lightgbm" and result["methods"] == ["permutation", "lime"]
    perm = result["permutation"]["features"]
    assert [(f["feature"], f["rank"]) for f in perm] == [(r[0], r[1]) for r in columns] == [(r[0], k + 1) for k, r in enumerate(columns)]
    assert sorted(r[0] for r in columns) == ["balance", "income", "student"]
    assert result["permutation"]["metric"] == "roc_auc" and result["permutation"]["rows"] == 1500
    rows = result["instances"]
    assert len(rows) == 10 and all(r["method"] == "lime" for r in rows)  # --fast: 10 rows
    for f, (name, rank, imp, sd, w_auc, cost, lime, top) in zip(perm, columns):
        assert [imp, sd] == [round(f["importance"], 4), round(f["std"], 4)]
        assert imp == pytest.approx(np.mean(f["drops"]), abs=1e-4)  # the mean drop over the shuffles
        run = f"explain-without-{name}"
        assert w_auc == round(_metrics(folder, run)["test"]["roc_auc"], 4)
        assert name not in [c["name"] for c in _manifest(folder, run)["features"]]  # really retrained without it
        assert len(_manifest(folder, run)["features"]) == 2
        assert cost == pytest.approx(auc - _metrics(folder, run)["test"]["roc_auc"], abs=1e-4)
        assert lime == round(float(np.mean([abs(r["attributions"][name]) for r in rows])), 4)
        assert top == round(sum(max(r["attributions"], key=lambda c: abs(r["attributions"][c])) == name for r in rows) / len(rows), 4)
    assert sum(r[7] for r in columns) == pytest.approx(1.0)
    assert ev.supported == (columns[0][0] == "balance" and columns[0][5] > columns[-1][5] and columns[0][7] >= 0.8)
    assert columns[0][0] == "balance" and columns[0][5] > 0.2  # Default: balance carries nearly all the signal


def test_privacy_cost_rows_are_its_dp_and_federated_runs(ran):
    folder, ev = ran["privacy-cost"]
    by = {r[0]: r for r in ev.rows}
    assert list(by) == ["no DP (same model and loop)", "DP-SGD, epsilon 8", "centralized: the pooled rows, 20 epochs",
                        "federated: 5 clients, iid (label skew 0.01), 20 rounds"]  # --fast: one budget, IID clients
    nodp, eps8, central, fed = ev.rows
    plain, private = _metrics(folder, "privacy-nodp-seed0"), _metrics(folder, "privacy-eps8-seed0")
    assert nodp[1:6] == [1] + [round(plain["test"]["accuracy"], 4)] * 3 + [0.0] and not plain.get("privacy")
    assert eps8[2] == round(private["test"]["accuracy"], 4) and eps8[5] == pytest.approx(eps8[2] - nodp[2], abs=1e-4)
    spent = private["privacy"]
    assert eps8[6] == round(spent["epsilon"], 4) and eps8[7] == round(spent["noise_multiplier"], 4)
    assert spent["epsilon"] <= spent["target_epsilon"] == 8.0 and spent["accountant"] == "rdp" and spent["steps"] > 0
    # the two runs differ only in DP: the same model and the same loop settings (forgeml's DP defaults)
    a, b = _config(folder, "privacy-nodp-seed0"), _config(folder, "privacy-eps8-seed0")
    assert a["model"]["name"] == b["model"]["name"] == "linear" and a["train"]["privacy"] is None
    assert b["train"]["privacy"]["epsilon"] == 8.0 and a["data"]["split"] == b["data"]["split"]
    for key in ("batch_size", "epochs", "optimizer", "momentum", "lr", "weight_decay", "schedule", "early_stopping"):
        assert a["train"][key] == b["train"][key], key
    federated = _metrics(folder, "privacy-federated-iid")
    info = federated["federated"]
    assert info["options"]["clients"] == 5 and info["options"]["rounds"] == 20 and len(info["rounds"]) == 20
    assert sum(info["partition"]["rows"]) == 1257 and not federated.get("privacy")
    assert central[2] == round(info["central"]["test"]["accuracy"], 4) and fed[2] == round(federated["test"]["accuracy"], 4)
    assert fed[5] == pytest.approx(fed[2] - central[2], abs=1e-4)
    assert ev.supported == (-eps8[5] < 0.03 and abs(fed[5]) <= 0.02)


def test_duplicate_leakage_rows_are_its_runs_and_the_copies_are_what_it_says(ran):
    from forgeml import api
    from forgeml.playbook.leakage import ID, MONEY, TARGET
    from forgeml.run import split_rows

    folder, ev = ran["duplicate-leakage"]
    exact, near = (pd.read_csv(folder / f"credit-{kind}-seed0.csv") for kind in ("exact", "near"))
    n, copies = 4454, 1336
    assert len(exact) == len(near) == n + copies and exact[ID].nunique() == n
    first, second = exact.iloc[:n], exact.iloc[n:]
    originals = first.set_index(ID).loc[second[ID]].reset_index()
    pd.testing.assert_frame_equal(originals, second.reset_index(drop=True))  # exact: the same row again
    moved = near.iloc[n:].reset_index(drop=True)
    assert (moved[ID] == second[ID].to_numpy()).all()
    rest = [c for c in exact.columns if c not in MONEY]
    pd.testing.assert_frame_equal(moved[rest], originals[rest])
    was, now = originals[MONEY].to_numpy(dtype=float), moved[MONEY].to_numpy(dtype=float)
    assert (np.isnan(was) == np.isnan(now)).all()
    assert np.nanmax(np.abs(now - was) - 0.02 * np.abs(was)) <= 0.5  # moved by at most 2%, then rounded
    assert np.nanmean(now != was) > 0.5  # and most money values did move
    assert not near.drop(columns=[ID]).duplicated().iloc[n:].any()  # no near copy is an exact one

    leaky, dedup, near_dedup, group = ev.rows
    for k, row in enumerate(ev.rows):
        run = f"dup-{k}-seed0"
        m, manifest = _metrics(folder, run), _manifest(folder, run)
        assert row[1] == sum(manifest["data"]["rows"].values()) and row[3] == manifest["data"]["rows"]["test"]
        assert [row[5], row[8]] == [round(m["test"]["accuracy"], 4), round(m["test"]["roc_auc"], 4)]
        parts = split_rows(api.load(folder / "runs" / run))
        seen = parts["test"][ID].isin(set(parts["train"][ID]))
        assert row[4] == round(seen.mean(), 4)
    assert _manifest(folder, "dup-1-seed0")["data"]["preparation"]["duplicates"] == copies  # every exact copy, no more
    assert _manifest(folder, "dup-2-seed0")["data"]["preparation"]["duplicates"] == 0  # near copies slip through
    assert dedup[4] == group[4] == 0.0 and dedup[6] == group[6] == "-" and leaky[4] > 0.25
    assert _config(folder, "dup-3-seed0")["data"]["split"]["group_col"] == ID
    # forgeml profile's count is the exact file's test rows whose feature vector is also a training row's
    parts = split_rows(api.load(folder / "runs" / "dup-0-seed0"))
    features = [c for c in exact.columns if c not in (ID, TARGET)]
    key = {s: pd.util.hash_pandas_object(parts[s][features], index=False) for s in ("train", "test")}
    assert leaky[2] == dedup[2] == int(key["test"].isin(set(key["train"])).sum())
    assert near_dedup[2] == group[2] <= 2  # the near file: only the table's own couple of repeats
    assert ev.supported == (leaky[5] - dedup[5] >= 0.02 and near_dedup[1] == leaky[1] and near_dedup[5] - group[5] >= 0.02)
