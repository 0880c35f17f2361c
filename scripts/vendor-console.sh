#!/usr/bin/env bash
# Refreshes the console's vendored JavaScript from the npm registry (the only build step the
# console has; running Pulse needs none). Pin a new version here, run this, look at the diff,
# and commit app/static/vendor/ with it.
set -euo pipefail

LIT_HTML_VERSION=3.3.3
UPLOT_VERSION=1.6.32

root="$(cd "$(dirname "$0")/.." && pwd)"
vendor="$root/app/static/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

unpack() {  # unpack NAME VERSION: the package's files under $work/NAME
  (cd "$work" && npm pack --silent "$1@$2" >/dev/null && mkdir "$1" && tar xzf "$1-$2.tgz" -C "$1" --strip-components=1)
}

unpack lit-html "$LIT_HTML_VERSION"
unpack uplot "$UPLOT_VERSION"

rm -rf "$vendor/lit-html" "$vendor/uplot"
mkdir -p "$vendor/lit-html" "$vendor/uplot"
# The source maps are not shipped, so the comment pointing at them goes too.
mkdir -p "$vendor/lit-html/directives"
for file in lit-html.js directive.js directive-helpers.js directives/keyed.js; do
  sed '/^\/\/# sourceMappingURL=/d' "$work/lit-html/$file" > "$vendor/lit-html/$file"
done
cp "$work/lit-html/LICENSE" "$vendor/lit-html/LICENSE"
cp "$work/uplot/dist/uPlot.esm.js" "$work/uplot/dist/uPlot.min.css" "$work/uplot/LICENSE" "$vendor/uplot/"

cat > "$vendor/README.md" <<NOTE
# Vendored front-end libraries of the operator console

Copied from the npm registry by \`scripts/vendor-console.sh\`; do not edit by hand.

| library | version | licence | files |
| --- | --- | --- | --- |
| lit-html | $LIT_HTML_VERSION | BSD-3-Clause (lit-html/LICENSE) | lit-html.js, directive.js, directive-helpers.js, directives/keyed.js (the package's production build) |
| uPlot | $UPLOT_VERSION | MIT (uplot/LICENSE) | uPlot.esm.js, uPlot.min.css (from dist/) |
NOTE
echo "vendored lit-html $LIT_HTML_VERSION and uPlot $UPLOT_VERSION into $vendor"
