# hjr in a container: `docker build -t hjr .` then
#   docker run -v "$PWD/data:/data" -v "$PWD/runs:/runs" hjr browse --out /runs/browse
# GPU: docker build --build-arg BASE=tensorflow/tensorflow:2.21.0-gpu -t hjr-gpu .
ARG BASE=python:3.11-slim
FROM ${BASE}

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    HJR_DATA_DIR=/data/prepared

RUN useradd --create-home --uid 1000 hjr
WORKDIR /app
COPY --chown=hjr:hjr . /app
# The same install as README.md's.
RUN pip install --no-cache-dir -e . \
    && mkdir -p /data /runs \
    && chown hjr:hjr /data /runs

USER 1000:1000
VOLUME ["/data", "/runs"]
WORKDIR /runs
ENTRYPOINT ["hjr"]
CMD ["--help"]
