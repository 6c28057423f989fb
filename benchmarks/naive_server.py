"""The naive baseline of serve_load.py: what a team writes first. FastAPI, the trained model in eager PyTorch via
forgeml.load, a DataFrame per request, one request at a time (a lock: the model is not shared across threads).

    uvicorn --app-dir benchmarks naive_server:app   (FORGEML_RUN=runs/NAME)
"""
import os
import threading

import pandas as pd
import torch
from fastapi import FastAPI

import forgeml

torch.set_num_threads(int(os.environ.get("NAIVE_THREADS", "1")))
model = forgeml.load(os.environ["FORGEML_RUN"])
lock = threading.Lock()
app = FastAPI()


@app.post("/predict")
def predict(body: dict):
    with lock:
        out = model.predict(pd.DataFrame(body["instances"]))
    proba = out.filter(like="proba_").to_numpy().tolist()
    return {"predictions": out["prediction"].tolist(), "probabilities": proba}
