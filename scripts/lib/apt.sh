# Shared by the test-server scripts (sourced, not run).

# packages_missing NAME...: print the names of the Debian packages not installed
packages_missing() {
  local p missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  echo "${missing[@]}"
}
