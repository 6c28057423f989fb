"""BentoML serving the exported forgeml graph: an adaptive-batching (batchable) API, one worker.
    PEER_SPEC=... bentoml serve bentoml_service:OnnxModel --port PORT"""
import bentoml

from common import answer, feed, session


@bentoml.service(workers=1)
class OnnxModel:
    def __init__(self):
        self.session = session()

    @bentoml.api(batchable=True, max_batch_size=64, max_latency_ms=1000)
    def predict(self, instances: list[dict]) -> list[dict]:
        return answer(self.session.run(None, feed(instances))[0])
