# hjr in a container: `docker build -t hjr .` then, with data and runs as volumes,
#   docker run -v "$PWD/data:/data" -v "$PWD/runs:/runs" hjr demo
#   docker run -v "$PWD/data:/data" -v "$PWD/runs:/runs" hjr train --head classification
# (runs land in /runs/<head>; prepared data in /data/prepared; competition files can
# be mounted anywhere and given as --data /data/kaggle).
# GPU: docker build --build-arg BASE=tensorflow/tensorflow:2.21.0-gpu -t hjr-gpu .
#   and docker run --gpus all ... hjr-gpu train --head classification
ARG BASE=python:3.11-slim
FROM ${BASE}

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    HJR_DATA_DIR=/data/prepared \
    HJR_RUNS_DIR=/runs

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
