#!/usr/bin/env bash
# Vendor Chart.js (MIT) into dedupe/ui/static/ from the npm registry, so the web UI
# (`dedupe ui`) never fetches anything at run time. Run it to move to another version:
#   scripts/vendor-chartjs.sh 4.6.2
# It takes the UMD build (one file, no bundler needed) and the license, and checks
# the tarball against the registry's integrity hash (npm pack does).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${1:-4.6.2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "chart.js@$VERSION" >/dev/null && tar xzf "chart.js-$VERSION.tgz")
cp "$work/package/dist/chart.umd.min.js" dedupe/ui/static/chart.umd.min.js
cp "$work/package/LICENSE.md" dedupe/ui/static/chart.js-LICENSE.md
# the source map is not shipped: drop the comment that would make a browser ask for it
sed -i "s|^//# sourceMappingURL=.*||" dedupe/ui/static/chart.umd.min.js
echo "chart.js $VERSION" > dedupe/ui/static/VENDORED
echo "vendored chart.js $VERSION into dedupe/ui/static/"
