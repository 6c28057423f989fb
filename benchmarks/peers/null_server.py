"""The null endpoint: FastAPI + uvicorn that parses the JSON body and returns a constant. What this HTTP stack can carry
with no model at all: the ceiling every Python server here is measured against.
    uvicorn --app-dir benchmarks/peers null_server:app --port PORT"""
import json

from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI()
CONSTANT = b'{"predictions":["No"],"probabilities":[[0.99,0.01]],"labels":["No","Yes"]}'


@app.post("/predict")
async def predict(request: Request):
    json.loads(await request.body())
    return Response(CONSTANT, media_type="application/json")
