# Shared by the test-server scripts (sourced, not run).

# packages_missing NAME...: print the names of the Debian packages not installed
packages_missing() {
  local p missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  echo "${missing[@]}"
}

# install_missing NAME...: apt-get install the Debian packages not installed yet (as root;
# `apt-get update` first only when the install fails for want of package lists)
install_missing() {
  local missing log=${TMPDIR:-/tmp}/dedupe-apt.log
  missing=$(packages_missing "$@")
  [ -n "$missing" ] || return 0
  echo "apt-get install $missing"
  export DEBIAN_FRONTEND=noninteractive
  # shellcheck disable=SC2086 # word splitting wanted
  if ! apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends $missing >"$log" 2>&1; then
    apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null
    # shellcheck disable=SC2086
    apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends $missing >"$log" 2>&1 \
      || { tail -n 20 "$log" >&2; echo "apt-get install $missing failed" >&2; return 1; }
  fi
}
