# `hierlm serve` in a container: the OpenAI-compatible server on port 8000, serving the model folder mounted at /model.
#
#   docker build -t hierlm .
#   docker run --rm -p 127.0.0.1:8000:8000 -v "$PWD/runs/synthetic-tiny/final:/model:ro" \
#     -e HIERLM_API_KEYS=sk-local hierlm [extra `hierlm serve` options, e.g. --max-batch 4 --quantize int8]
#
# or `docker compose up` (compose.yaml). The model is named "model" in the API (HIERLM_MODEL_NAME renames it).
#
# torch: the CPU build of torch 2.13.0 goes in first, so that `pip install .[serve]` keeps it; from a wheel in
# wheels/ when there is one (`pip download torch==2.13.0 --no-deps -d wheels --index-url
# https://download.pytorch.org/whl/cpu`), else from PyTorch's CPU index (TORCH_INDEX). Never from plain PyPI:
# that is the multi-GB CUDA build. wheels/ca.crt, when present, is the CA bundle pip trusts during the build
# (behind a TLS-intercepting proxy); it does not reach the final image.
#
# BASE: any Debian-like image with python3 >= 3.11 and its venv module, e.g. python:3.11-slim, or a
# `debootstrap`/`mmdebstrap` bookworm root with python3 and python3-venv brought in by `docker import`
# (tools/docker_check.sh makes one where no registry can be reached).
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
ARG TORCH=torch==2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
COPY wheels/ /tmp/wheels/
RUN python3 -m venv /opt/venv \
 && if [ -f /tmp/wheels/ca.crt ]; then export PIP_CERT=/tmp/wheels/ca.crt; fi \
 && if ls /tmp/wheels/torch-*.whl >/dev/null 2>&1; then \
      /opt/venv/bin/pip install --no-deps --no-index --find-links /tmp/wheels "$TORCH" \
      && /opt/venv/bin/pip install "$TORCH"; \
    else \
      /opt/venv/bin/pip install "$TORCH" --index-url "$TORCH_INDEX"; \
    fi \
 && /opt/venv/bin/python -c "import torch; assert not torch.version.cuda; print('torch', torch.__version__)"
COPY pyproject.toml README.md /src/
COPY hierlm/ /src/hierlm/
RUN if [ -f /tmp/wheels/ca.crt ]; then export PIP_CERT=/tmp/wheels/ca.crt; fi \
 && /opt/venv/bin/pip install --find-links /tmp/wheels "/src[serve]" \
 && /opt/venv/bin/python -c "import torch; assert not torch.version.cuda, 'pip replaced the CPU torch'"

FROM ${BASE}
COPY --from=build /opt/venv /opt/venv
RUN useradd --create-home --uid 10001 hierlm
ENV PATH=/opt/venv/bin:$PATH LANG=C.UTF-8 PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HIERLM_MODEL_NAME=model
USER hierlm
WORKDIR /home/hierlm
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python3", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
# extra arguments (CMD, or after the image name in `docker run`) go to `hierlm serve`; API keys: HIERLM_API_KEYS
ENTRYPOINT ["/bin/sh", "-c", \
  "exec hierlm serve \"${HIERLM_MODEL_NAME:-model}=/model\" --host 0.0.0.0 --port 8000 \"$@\"", "hierlm"]
CMD []
