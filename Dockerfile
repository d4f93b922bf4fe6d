# syntax=docker/dockerfile:1
# The reconciler image: `reconciler` as the entrypoint, running the Kubernetes operator by
# default (the Helm chart in charts/reconciler runs it). Build and push it tagged with the
# chart's appVersion, the tag the chart pulls unless image.tag says otherwise:
#   docker build -t <your registry>/reconciler:0.1.0 .
#   docker push <your registry>/reconciler:0.1.0

# The base image by tag: each build takes the python:3.11-slim of the day (security fixes
# included). For reproducible builds pin it by digest, and renew the digest deliberately:
#   docker pull python:3.11-slim
#   base=$(docker inspect --format '{{index .RepoDigests 0}}' python:3.11-slim)
#   docker build --build-arg PYTHON_IMAGE="$base" -t <your registry>/reconciler:0.1.0 .
# ($base is python@sha256:<digest>.) Or write such a reference here, as
# python:3.11-slim@sha256:<digest>; `docker buildx imagetools inspect python:3.11-slim`
# shows the digest of the multi-platform index without pulling.
ARG PYTHON_IMAGE=python:3.11-slim

# Build the wheel of this project and of every dependency (all are binary wheels on PyPI,
# so no compiler is needed even here).
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY reconciler ./reconciler
# reconciler/examples links here: the example sites are package data (`reconciler demo`).
COPY examples ./examples
RUN pip wheel --wheel-dir /wheels .

# The runtime: a venv with the wheels installed offline, a non-root user, nothing else.
FROM ${PYTHON_IMAGE}
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# The wheels are bind-mounted from the build stage, so they never become a layer here.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv /opt/reconciler \
    && /opt/reconciler/bin/pip install --no-index --find-links=/wheels energy-reconciler \
    && groupadd --system --gid 10001 reconciler \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin reconciler \
    && mkdir -p /var/lib/reconciler \
    && chown 10001:10001 /var/lib/reconciler
# Bytecode was compiled at install time; the root filesystem is read-only at run time.
ENV PATH=/opt/reconciler/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RECONCILER_STATE_DIR=/var/lib/reconciler
WORKDIR /var/lib/reconciler
USER 10001:10001
# kopf's health endpoint (--liveness).
EXPOSE 8080
ENTRYPOINT ["reconciler"]
CMD ["operator", "--all-namespaces", "--liveness", "http://0.0.0.0:8080/healthz"]
