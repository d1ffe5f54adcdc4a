#!/usr/bin/env bash
# CI: build the Docker image (Dockerfile) and check that it serves: GET /health, and one POST /v1/completions.
#
# Where no registry image can be pulled, the base is made here: a Debian bookworm root (mmdebstrap, or debootstrap)
# with python3 and python3-venv, brought in by `docker import` as hierlm-base:bookworm and kept for later runs.
# The image is built from a copy of the build context in a temporary folder: nothing is written inside the checkout.
#
# Exit status: 0 when the check passed, or when it cannot run here (no Docker daemon, no Debian mirror: the reason
# and the fallback are printed); 1 when the image does not build, or was built and started but the check failed.
#
#   HIERLM_DOCKER_BASE=python:3.11-slim   a base image to build on instead of making one (the Dockerfile's default)
#   HIERLM_DOCKER_IMAGE=hierlm:ci-check   the tag of the image built
#   HIERLM_DOCKERD_ARGS="..."             start dockerd with exactly these options (default: try a few, see below)
#   HIERLM_DOCKER_KEEP_DAEMON=1           leave a dockerd this script started running
#   HIERLM_DEBIAN_MIRROR=URL              the mirror the base is bootstrapped from (default: deb.debian.org)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
PY=$ROOT/.venv/bin/python
HIERLM=$ROOT/.venv/bin/hierlm
BASE_TAG=hierlm-base:bookworm
IMAGE=${HIERLM_DOCKER_IMAGE:-hierlm:ci-check}
MIRROR=${HIERLM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
TORCH=torch==2.13.0
TORCH_INDEX=https://download.pytorch.org/whl/cpu
FALLBACK="the server itself is checked without Docker by tests/test_serve.py; build and check the image on a machine \
whose Docker daemon runs: tools/docker_check.sh, or docker compose up --build (see compose.yaml)"
TMP=$(mktemp -d /tmp/hierlm-docker.XXXXXX)
NAME=hierlm-check-$$
DOCKERD_PID='' TRAIN_PID='' CONTAINER='' NET=bridge
T0=$SECONDS
TIMES=()

begin() { STEP=$1; STEP_T=$SECONDS; echo "== $1"; }
end() { local s="$STEP: $((SECONDS - STEP_T)) s${1:+ ($1)}"; echo "   $s"; TIMES+=("$s"); }
summary() {
  echo "== times"; local t; for t in "${TIMES[@]}"; do echo "   $t"; done
  echo "   total: $((SECONDS - T0)) s"
}
skip() {  # the check cannot run on this machine: say why ($2), and what to do instead
  echo "   $2"; echo "$1: skipped (fallback: $FALLBACK)"; summary; exit 0
}
fail() { echo "FAILED: $1"; summary; exit 1; }
cleanup() {
  [ -n "$TRAIN_PID" ] && kill "$TRAIN_PID" 2>/dev/null
  if [ -n "$CONTAINER" ]; then timeout 30 docker rm -f "$CONTAINER" >/dev/null 2>&1; fi
  if [ -n "$DOCKERD_PID" ] && [ -z "${HIERLM_DOCKER_KEEP_DAEMON:-}" ]; then
    kill "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 30); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 1; done
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
apt_install() {  # Debian packages, quietly; fails when they cannot be installed
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
  if timeout 120 apt-get update -qq >"$TMP/apt.log" 2>&1 &&
    DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq --no-install-recommends "$@" \
      >>"$TMP/apt.log" 2>&1; then return 0; fi
  tail -5 "$TMP/apt.log"; return 1
}
daemon_up() { timeout 10 docker info >/dev/null 2>&1; }

[ -x "$HIERLM" ] || fail "no $HIERLM: make install first"

begin "install docker.io, mmdebstrap"
need=()
if ! command -v dockerd >/dev/null && ! daemon_up; then   # a cold machine: one apt-get run for both
  need+=(docker.io)
  command -v mmdebstrap >/dev/null || command -v debootstrap >/dev/null || need+=(mmdebstrap)
  apt_install "${need[@]}" || skip "docker unavailable here" "apt-get could not install ${need[*]}"
fi
end "${need[*]:-nothing to install}"

begin "docker daemon"
if daemon_up; then
  end "already running"
else
  if [ -n "${HIERLM_DOCKERD_ARGS+set}" ]; then attempts=("$HIERLM_DOCKERD_ARGS")
  else   # as is; then without iptables/bridge (nested containers); then also without overlayfs
    attempts=("" "--iptables=false --ip6tables=false --bridge=none"
              "--iptables=false --ip6tables=false --bridge=none --storage-driver=vfs")
  fi
  for opts in "${attempts[@]}"; do
    echo "   dockerd ${opts:-(its defaults)}"
    # shellcheck disable=SC2086
    dockerd $opts >"$TMP/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    for _ in $(seq 30); do daemon_up && break; kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 1; done
    if daemon_up; then break; fi
    kill "$DOCKERD_PID" 2>/dev/null; wait "$DOCKERD_PID" 2>/dev/null; DOCKERD_PID=
    grep -iE 'level=(error|fatal)|failed' "$TMP/dockerd.log" | tail -3 | cut -c1-300 | sed 's/^/     /'
  done
  [ -n "$DOCKERD_PID" ] || skip "docker daemon unavailable here" "dockerd did not start: its errors are above"
  case "$opts" in *bridge=none*) NET=host ;; esac   # no bridge network: build and serve on the host's network
  end "dockerd ${opts:-with its defaults}; network: $NET"
fi
docker version --format '   client {{.Client.Version}}, server {{.Server.Version}}' 2>/dev/null
docker info --format '   storage driver {{.Driver}}, cgroup driver {{.CgroupDriver}}' 2>/dev/null

begin "base image"
if [ -n "${HIERLM_DOCKER_BASE:-}" ]; then
  BASE=$HIERLM_DOCKER_BASE; end "$BASE, as given"
elif docker image inspect "$BASE_TAG" >/dev/null 2>&1; then
  BASE=$BASE_TAG; end "$BASE_TAG, made by an earlier run"
else
  BASE=$BASE_TAG
  if ! command -v mmdebstrap >/dev/null && ! command -v debootstrap >/dev/null; then
    apt_install mmdebstrap || skip "no base image here" "apt-get could not install mmdebstrap"
  fi
  if command -v mmdebstrap >/dev/null; then
    tool=mmdebstrap
    timeout 600 mmdebstrap --variant=minbase --include=python3,python3-venv --dpkgopt=force-unsafe-io \
      bookworm "$TMP/base.tar" "$MIRROR" >"$TMP/bootstrap.log" 2>&1
  else
    tool=debootstrap
    timeout 900 debootstrap --variant=minbase --include=python3,python3-venv bookworm "$TMP/rootfs" "$MIRROR" \
      >"$TMP/bootstrap.log" 2>&1 &&
      rm -rf "$TMP"/rootfs/var/cache/apt/archives/*.deb "$TMP"/rootfs/var/lib/apt/lists/* &&
      tar -C "$TMP/rootfs" -cf "$TMP/base.tar" . && rm -rf "$TMP/rootfs"
  fi || { tail -5 "$TMP/bootstrap.log"; skip "no base image here" "$tool made no Debian bookworm root from $MIRROR"; }
  timeout 300 docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' -c 'CMD ["/bin/bash"]' "$TMP/base.tar" "$BASE_TAG" >/dev/null \
    || fail "docker import of the $tool root"
  rm -f "$TMP/base.tar"
  end "$tool bookworm + python3 $(docker run --rm "$BASE_TAG" python3 -c \
    'import platform; print(platform.python_version())' 2>&1), imported as $BASE_TAG"
fi

begin "build context"
CTX=$TMP/context
mkdir -p "$CTX/wheels"
cp -r Dockerfile .dockerignore pyproject.toml README.md hierlm "$CTX/"
find "$CTX/hierlm" -name __pycache__ -prune -exec rm -rf {} +
cp -r wheels/. "$CTX/wheels/" 2>/dev/null
# torch's CPU wheel: where pip finds it on this machine (its find-links, its cache) or PyTorch's CPU index
if ! ls "$CTX"/wheels/torch-*.whl >/dev/null 2>&1; then
  PIP_RETRIES=1 PIP_DEFAULT_TIMEOUT=20 timeout 600 "$PY" -m pip download "$TORCH" --no-deps --only-binary=:all: -q \
    -d "$CTX/wheels" --index-url "$TORCH_INDEX" >"$TMP/pip.log" 2>&1 || tail -3 "$TMP/pip.log"
fi
# the CA bundle this machine's pip trusts (e.g. behind a TLS-intercepting proxy), for pip inside the build
CA=${PIP_CERT:-$("$PY" -m pip config get global.cert 2>/dev/null)}
[ -f "$CA" ] || CA=/etc/ssl/certs/ca-certificates.crt
[ -f "$CA" ] && cp "$CA" "$CTX/wheels/ca.crt"
inputs=$(find "$CTX/wheels" -type f ! -name README.md -printf '%f ')
end "wheels/: ${inputs:-nothing }($(du -sh "$CTX" | cut -f1) in all)"

begin "train a tiny model (on the host, beside the build)"
(cd "$TMP" && exec timeout 600 "$HIERLM" train synthetic-tiny --out "$TMP/run" --eval-records 0 \
   train.max_steps=20 train.warmup_steps=2 eval.eval_every=1000 >"$TMP/train.log" 2>&1) &
TRAIN_PID=$! TRAIN_START=$(date +%s)
echo "   in the background: $HIERLM train synthetic-tiny --out $TMP/run train.max_steps=20"

begin "docker build --build-arg BASE=$BASE"
netarg=(); [ "$NET" = host ] && netarg=(--network host)
if ! timeout 1200 docker build "${netarg[@]}" --build-arg "BASE=$BASE" -t "$IMAGE" "$CTX" >"$TMP/build.log" 2>&1; then
  tail -30 "$TMP/build.log"; fail "docker build"
fi
grep -E '^torch ' "$TMP/build.log" | sed 's/^/   /'
end "$IMAGE, $(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.2f GB", $1 / 1e9}')"

wait "$TRAIN_PID"; rc=$?; TRAIN_PID=
[ "$rc" = 0 ] || { tail -20 "$TMP/train.log"; fail "hierlm train (exit $rc)"; }
grep -E '^final validation' "$TMP/train.log" | sed 's/^/   /'
TIMES+=("train a tiny model (beside the build): $(($(stat -c %Y "$TMP/train.log") - TRAIN_START)) s")
[ -f "$TMP/run/final/config.json" ] || fail "hierlm train wrote no $TMP/run/final"

begin "serve $TMP/run/final in the container"
KEY=ci-$RANDOM$RANDOM
if [ "$NET" = host ]; then
  PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  run_net=(--network host); serve_args=(--port "$PORT")
else
  run_net=(-p 127.0.0.1::8000); serve_args=()
fi
CONTAINER=$(timeout 60 docker run -d --name "$NAME" "${run_net[@]}" -v "$TMP/run/final:/model:ro" \
  -e HIERLM_API_KEYS="$KEY" "$IMAGE" --max-batch 2 "${serve_args[@]}") || fail "docker run"
[ "$NET" = host ] || PORT=$(docker port "$CONTAINER" 8000/tcp | head -1 | sed 's/.*://')
echo "   container $NAME, http://127.0.0.1:$PORT"
HIERLM_URL=http://127.0.0.1:$PORT HIERLM_KEY=$KEY timeout 150 "$PY" - <<'PY'
import json, os, sys, time, urllib.error, urllib.request
url, key = os.environ['HIERLM_URL'], os.environ['HIERLM_KEY']
def call(path, body=None, key=None):
    headers = {'Content-Type': 'application/json', **({'Authorization': f'Bearer {key}'} if key else {})}
    req = urllib.request.Request(url + path, None if body is None else json.dumps(body).encode(), headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as r: return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e: return e.code, json.loads(e.read() or b'{}')
t0, deadline = time.monotonic(), time.monotonic() + 120
while True:
    try: status, health = call('/health'); break
    except (OSError, ValueError) as e:
        if time.monotonic() > deadline: sys.exit(f'GET /health: no answer in 120 s ({e})')
        time.sleep(1)
print(f'   GET /health: {status} {health} after {time.monotonic() - t0:.1f} s')
assert status == 200 and health.get('status') == 'ok' and health.get('models') == ['model'], health
status, _ = call('/v1/completions', {'model': 'model', 'prompt': 'Ka', 'max_tokens': 8})
print(f'   POST /v1/completions without the key: {status}')
assert status == 401, status
t = time.monotonic()
status, r = call('/v1/completions', {'model': 'model', 'prompt': 'Ka', 'max_tokens': 8, 'seed': 0}, key)
text = (r.get('choices') or [{}])[0].get('text')
print(f'   POST /v1/completions: {status} in {time.monotonic() - t:.2f} s: text {text!r}, usage {r.get("usage")}')
assert status == 200, r
u = r['usage']
assert isinstance(r['choices'][0]['text'], str) and u['prompt_tokens'] == 2 and 1 <= u['completion_tokens'] <= 8, r
assert u['total_tokens'] == u['prompt_tokens'] + u['completion_tokens'], u
PY
ok=$?
if [ "$ok" = 0 ] && [ "$NET" = host ]; then   # the HEALTHCHECK asks port 8000, and the server is on another one
  echo "   docker HEALTHCHECK: not checked (host network: the server listens on $PORT)"
elif [ "$ok" = 0 ]; then   # the image's HEALTHCHECK (compose.yaml runs the same command) reports healthy
  for _ in $(seq 40); do
    health=$(docker inspect -f '{{.State.Health.Status}}' "$CONTAINER" 2>/dev/null)
    [ "$health" = starting ] || break; sleep 1
  done
  echo "   docker HEALTHCHECK: $health"; [ "$health" = healthy ] || ok=1
fi
if [ "$ok" != 0 ]; then
  echo "   container state: $(docker inspect -f '{{.State.Status}} (exit {{.State.ExitCode}})' "$CONTAINER")"
  docker logs --tail 30 "$CONTAINER" 2>&1 | sed 's/^/   | /'
  fail "the image was built and started, but the check failed"
fi
timeout 60 docker stop -t 10 "$CONTAINER" >/dev/null; timeout 30 docker rm "$CONTAINER" >/dev/null && CONTAINER=
end "passed"

if docker compose version >/dev/null 2>&1; then compose=(docker compose)
elif command -v docker-compose >/dev/null; then compose=(docker-compose)
else compose=(); fi
if [ "${#compose[@]}" -gt 0 ]; then
  begin "${compose[*]} config"
  HIERLM_MODEL="$TMP/run/final" timeout 60 "${compose[@]}" -f compose.yaml config -q || fail "compose.yaml is not valid"
  end "compose.yaml is valid"
fi

echo "docker check passed: $IMAGE (on $BASE) serves /health and /v1/completions"
summary
