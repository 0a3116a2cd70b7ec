# hjr in a container, run as any user (docs/export.md, Docker):
#   docker build -t hjr .
#   mkdir -p data runs
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD/data:/data" -v "$PWD/runs:/runs" hjr demo
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD/data:/data" -v "$PWD/runs:/runs" \
#       hjr train --preset quick --head offsets
# Runs land in /runs (the demo in /runs/demo, `train` in /runs/<head>); prepared data
# and the caches (Keras's ImageNet weights among them) in /data. Other data can be
# mounted anywhere, e.g. -v "$PWD/kaggle:/kaggle:ro" and --data /kaggle.
# GPU: docker build --build-arg BASE=tensorflow/tensorflow:2.21.0-gpu -t hjr-gpu .
#   and docker run --gpus all ... hjr-gpu train --head classification
ARG BASE=python:3.11-slim
FROM ${BASE}

# Every cache under /data: the image needs no writable home, so any uid runs it.
ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    HJR_CONTAINER=docker \
    HJR_DATA_DIR=/data/prepared \
    HJR_RUNS_DIR=/runs \
    KERAS_HOME=/data/keras \
    XDG_CACHE_HOME=/data/cache \
    MPLCONFIGDIR=/data/cache/matplotlib

WORKDIR /app
COPY . /app
# The same install as README.md's, with the versions pinned in constraints.txt.
# Volumes left unmounted are writable by any uid, as /tmp is.
RUN pip install --no-cache-dir -c constraints.txt -e . \
    && mkdir -p /data /runs \
    && chmod 1777 /data /runs

USER 1000:1000
VOLUME ["/data", "/runs"]
WORKDIR /runs
ENTRYPOINT ["hjr"]
CMD ["--help"]
