#!/usr/bin/env bash
# Set up everything Tusk and its tests need, from a bare Debian machine.
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
APT_UPDATED=""
apt_install() {
  if [ -z "$APT_UPDATED" ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# Python 3.11+ with venv
PY="${PYTHON:-python3}"
if ! command -v "$PY" >/dev/null || ! "$PY" -c 'import sys, venv; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  apt_install python3 python3-venv python3-dev
  PY=python3
fi
# bubblewrap sandboxes pipeline code (literal /pfs, read-only inputs, no network)
if ! command -v bwrap >/dev/null; then apt_install bubblewrap; fi
# setpriv drops to an unprivileged uid inside the sandbox when Tusk runs as root; prlimit sets its limits
if ! command -v setpriv >/dev/null || ! command -v prlimit >/dev/null; then apt_install util-linux; fi

# the image tests build small images from Debian's static busybox, and compile the regression workshop's
# programs statically (gcc, libc6-dev's libc.a): nothing can be pulled from a registry here
if [ ! -x /bin/busybox ] || ! /bin/busybox --list >/dev/null 2>&1; then apt_install busybox-static; fi
if ! command -v gcc >/dev/null || ! ls /usr/lib/*-linux-gnu/libc.a >/dev/null 2>&1; then apt_install gcc libc6-dev; fi

# Debian's Chromium for the dashboard's browser tests (Playwright drives /usr/bin/chromium; nothing is downloaded)
if [ ! -x /usr/bin/chromium ]; then apt_install chromium fonts-dejavu-core; fi

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv || { apt_install python3-venv; "$PY" -m venv .venv; }
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
# pandas over the S3 gateway through s3fs: aiobotocore pins an older botocore than boto3 and the AWS CLI, so
# s3fs lives apart, for a child process (tests/integration/test_s3_gateway_clients.py)
if [ ! -f .venv/s3fs-lib/.complete ]; then
  rm -rf .venv/s3fs-lib
  .venv/bin/python -m pip install -q --no-deps --target .venv/s3fs-lib \
    s3fs==2026.9.0 aiobotocore==3.10.0 aioitertools==0.13.0 botocore==1.43.117
  touch .venv/s3fs-lib/.complete
fi
# KServe's SDK and the OIP's generated clients: KServe pins pandas<3, and both register their own 'inference'
# protobuf package, so they live apart, for child processes (tests/integration/test_oip_more_clients.py)
if [ ! -f .venv/kserve-lib/.complete ]; then
  rm -rf .venv/kserve-lib
  .venv/bin/python -m pip install -q --target .venv/kserve-lib \
    kserve==0.21.0 open-inference-openapi==2.0.0.1 open-inference-grpc==2.0.0
  touch .venv/kserve-lib/.complete
fi
echo "bootstrap: python environment ready in .venv"
