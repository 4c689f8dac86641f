# Training image of audioflow: the package with its config groups, torch with CUDA, and
# snakemake for the in-cluster controller (k8s/controller-job.yaml). Every stage Job runs it.
#   docker build -t REGISTRY/audioflow:TAG . && docker push REGISTRY/audioflow:TAG
# then name REGISTRY/audioflow:TAG as `image:` in config/teams/<team>.yaml (docs/kubernetes.md).
FROM python:3.11-slim

# libsndfile: soundfile's audio I/O. (.git stays out of the image, see .dockerignore, so
# exports made in it record the package version, not a commit.)
RUN apt-get update \
    && apt-get install -y --no-install-recommends libsndfile1 \
    && rm -rf /var/lib/apt/lists/*

# The pods run as this user (runAsNonRoot, runAsUser 1000 in the manifests).
RUN groupadd --gid 1000 audioflow \
    && useradd --uid 1000 --gid 1000 --create-home audioflow

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 \
    HOME=/home/audioflow
WORKDIR /opt/audioflow

# Dependencies first (torch is large): this layer is rebuilt only when pyproject.toml changes.
COPY pyproject.toml README.md ./
RUN mkdir -p src/audioflow && touch src/audioflow/__init__.py \
    && pip install -e . && rm -rf src

# The code, installed editable: audioflow finds config/ beside src/ (/opt/audioflow/config),
# and the controller finds the Snakefile, workflow/ and the k8s profile here.
COPY src ./src
COPY config ./config
COPY workflow ./workflow
COPY k8s ./k8s
COPY profiles ./profiles
COPY Snakefile ./
RUN pip install --no-deps -e . && python -c "import audioflow.cli"

USER 1000:1000
ENTRYPOINT []
CMD ["audioflow", "--help"]
