"""LitServe serving the exported forgeml graph: dynamic batching (max 64 rows, 5 ms), one CPU worker.
    PEER_SPEC=... PEER_PORT=... python litserve_server.py"""
import os

import litserve as ls
import numpy as np

from common import answer, feed, session


class OnnxAPI(ls.LitAPI):
    def setup(self, device):
        self.session = session()

    def decode_request(self, request):
        return request["instances"]

    def batch(self, inputs):
        return [row for rows in inputs for row in rows], [len(rows) for rows in inputs]

    def predict(self, batch):
        rows, sizes = batch
        return self.session.run(None, feed(rows))[0], sizes

    def unbatch(self, output):
        probabilities, sizes = output
        starts = np.cumsum([0, *sizes])
        return [probabilities[a:b] for a, b in zip(starts[:-1], starts[1:])]

    def encode_response(self, output):
        return {"predictions": answer(output)}


if __name__ == "__main__":
    server = ls.LitServer(OnnxAPI(max_batch_size=64, batch_timeout=0.005), accelerator="cpu", workers_per_device=1)
    server.run(port=int(os.environ["PEER_PORT"]), log_level="warning")
