#!/usr/bin/env bash
# A plain `pip install .` (no extras) into a fresh virtualenv, then every core command as a new user would
# type it, and the one-line error each missing extra gives. Run by scripts/test.sh (and so by CI).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
work=$(mktemp -d /tmp/tusk-plain-XXXXXX)
trap 'if [ -n "${server:-}" ]; then kill "$server" 2>/dev/null || true; fi; rm -rf "$work"' EXIT
"$PY" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --disable-pip-version-check .
export PATH="$work/venv/bin:$PATH" TUSK_HOME="$work/home"
unset TUSK_ADDRESS TUSK_TOKEN TUSK_DATABASE_URL TUSK_OBJECTS_URL
cd "$work"
step() { echo "smoke: $*"; }
fail() { echo "smoke: FAILED: $*" >&2; exit 1; }

step "tusk --version, --help"
tusk --version | grep -q '^tusk ' || fail "--version"
tusk --help >/dev/null
step "repos, files, commits, branches"
tusk repo create data
printf 'alpha\nbeta\n' > a.txt
tusk put file data@master:/a.txt -f a.txt
[ "$(tusk get file data@master:/a.txt)" = "$(cat a.txt)" ] || fail "get file"
tusk list file data@master >/dev/null
tusk commit list data >/dev/null
tusk branch create data@staging --head master
tusk glob file 'data@master:/*.txt' >/dev/null
step "pipelines, jobs, lineage"
cat > upper.json <<'EOF'
{"pipeline": {"name": "upper"},
 "transform": {"cmd": ["sh", "-c", "tr a-z A-Z < /pfs/data/a.txt > /pfs/out/a.txt"]},
 "input": {"pfs": {"repo": "data", "glob": "/"}}}
EOF
tusk pipeline create -f upper.json
[ "$(tusk get file upper@master:/a.txt)" = "$(tr a-z A-Z < a.txt)" ] || fail "pipeline output"
tusk job list >/dev/null
tusk lineage upper@master >/dev/null
tusk fsck >/dev/null
step "tusk server (the REST API)"
port=$("$work/venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
tusk server --port "$port" --no-auth >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do
  "$work/venv/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/api/v1/health')" \
    2>/dev/null && break
  sleep 0.2
done
TUSK_ADDRESS="http://127.0.0.1:$port" tusk repo list | grep -q data || fail "remote repo list: $(cat "$work/server.log")"
kill "$server"; wait "$server" || true; server=""

step "each missing extra is a one-line error naming it"
expect_extra() {  # expect_extra EXTRA COMMAND...: exit non-zero, one line, the extra named, no traceback
  local extra=$1; shift
  local msg rc=0
  msg=$("$@" 2>&1 >/dev/null) || rc=$?
  [ "$rc" != 0 ] || fail "$* exited 0 without tusk[$extra]"
  echo "$msg" | grep -q "Traceback" && fail "$* printed a traceback: $msg"
  [ "$(echo "$msg" | wc -l)" = 1 ] || fail "$* printed more than one line: $msg"
  echo "$msg" | grep -qF "tusk[$extra]" || fail "$* does not name tusk[$extra]: $msg"
  echo "smoke:   $msg"
}
expect_extra s3 env TUSK_OBJECTS_URL=s3://bucket/prefix tusk repo list
expect_extra postgres env TUSK_DATABASE_URL=postgresql+psycopg://nobody@127.0.0.1:1/none tusk repo list
expect_extra ml tusk demo
expect_extra distributed env TUSK_DASK_ADDRESS=tcp://127.0.0.1:1 tusk put file data@master:/b.txt -f a.txt
echo "smoke: plain install ok"
