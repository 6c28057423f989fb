"""What every peer server shares: the exported forgeml graph on ONNX Runtime and the rows -> raw graph inputs step
(the graph does the preprocessing itself; a peer only gathers the JSON values, as forgeml's server does).
Runs in the peer's own virtual environment: numpy and onnxruntime only, no forgeml."""
import json
import os

import numpy as np
import onnxruntime as ort

SPEC = json.loads(os.environ["PEER_SPEC"])  # {"model": path, "numeric": [...], "categorical": [...], "labels": [...], "threads": n}


def session() -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(SPEC["threads"])
    options.inter_op_num_threads = 1
    return ort.InferenceSession(SPEC["model"], options, providers=["CPUExecutionProvider"])


def feed(rows: list) -> dict:
    out = {}
    if SPEC["numeric"]:
        out["numeric"] = np.array([[np.nan if r[c] is None else r[c] for c in SPEC["numeric"]] for r in rows], dtype=np.float32)
    if SPEC["categorical"]:
        out["categorical"] = np.array([["" if r[c] is None else str(r[c]) for c in SPEC["categorical"]] for r in rows], dtype=object)
    return out


def answer(probabilities: np.ndarray) -> list:
    labels = SPEC["labels"]
    return [{"prediction": labels[int(i)], "probabilities": [round(float(p), 6) for p in row]}
            for i, row in zip(probabilities.argmax(axis=1), probabilities)]
