# CPU image for `forgeml serve`. Runs are not baked in: mount them at /runs.
#
#   docker build -t forgeml-serve .
#   docker run --rm -v "$PWD/runs:/runs" -p 8000:8000 forgeml-serve /runs/NAME [/runs/OTHER ...] [--workers 2]
#
# Export the runs first (forgeml export runs/NAME) or mount /runs writable: a run without model.onnx is exported
# when the server starts. EXTRAS=serve,export,cluster adds Ray Serve for --ray (give the container --shm-size=1g).
FROM python:3.11-slim

ARG TORCH=torch==2.13.0
ARG EXTRAS=serve,export

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# libgomp1: the OpenMP runtime that the LightGBM wheel links against (not in the slim image).
# The server runs as an unprivileged user with a home for caches (uid 1000, numeric below for runAsNonRoot).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 forgeml

# the CPU wheel first: from PyPI, torch would come with several GB of CUDA libraries
# hadolint ignore=DL3013
RUN pip install --index-url https://download.pytorch.org/whl/cpu "$TORCH"

WORKDIR /opt/forgeml
COPY pyproject.toml README.md ./
COPY src ./src
# hadolint ignore=DL3013
RUN pip install ".[$EXTRAS]"

USER 1000:1000
WORKDIR /home/forgeml
VOLUME ["/runs"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

ENTRYPOINT ["forgeml", "serve", "--host", "0.0.0.0", "--port", "8000"]
