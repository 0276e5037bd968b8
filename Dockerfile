# syntax=docker/dockerfile:1
# Starcite node image: one node per container, all node data under the /data volume.
#
# Two stages: `build` turns Starcite and every dependency into wheels; the final
# stage installs only those wheels (no compiler, no pip cache, no source tree)
# and runs as an unprivileged user. Pin PYTHON_IMAGE to a digest for production
# builds (`--build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:...`).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY setup.cfg setup.py README.md ./
COPY starcite ./starcite
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index /wheels/*.whl \
    && groupadd --system --gid 10001 starcite \
    && useradd --system --uid 10001 --gid starcite --home-dir /data --no-create-home starcite \
    && mkdir -p /data && chown starcite:starcite /data
WORKDIR /app
COPY conf ./conf
COPY --chmod=0755 ops/container_healthcheck.py /usr/local/bin/starcite-healthcheck
# Environment overrides of conf/starcite.toml: listen on every interface of the
# container, keep data on the volume. Everything else (NODE_NAME, CLUSTER_NODES,
# STARCITE_CLUSTER_SECRET, the archive, STARCITE_LOG_FORMAT, ...) is set at run time.
ENV STARCITE_HOST=0.0.0.0 PORT=4000 STARCITE_DATA_DIR=/data
USER 10001:10001
VOLUME /data
# 4000: HTTP API (PORT). 4400: the peer port, by convention (each node's own
# CLUSTER_NODES entry names it); keep it on a private network.
EXPOSE 4000 4400
# Ready, not merely live: 200 only once every local group has a leader and the
# node has caught up (see README "Verify a cluster"); the probe reads PORT.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["starcite-healthcheck", "/health/ready"]
STOPSIGNAL SIGTERM
CMD ["starcite", "serve", "--config", "/app/conf/starcite.toml"]
