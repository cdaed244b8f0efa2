#!/usr/bin/env bash
# Re-fetches the Swagger UI files that GET /docs serves (gateway/docsui/dist,
# embedded in the binary with go:embed) from the npm registry at the pinned
# version, checks the package's integrity against the pinned hash, and copies
# only the files the page needs, with the package's LICENSE and NOTICE and the
# licenses of the code bundled into swagger-ui-bundle.js.
#
#   scripts/docsui.sh            fetch the pinned version
#   scripts/docsui.sh --check    fetch into a temporary folder and fail if the
#                                committed files differ (CI drift check)
#
# To upgrade: change VERSION and INTEGRITY below (npm view swagger-ui-dist@X dist.integrity),
# run the script, then `go test ./gateway -run DocsUI` and look at /docs in a browser.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGE=swagger-ui-dist
VERSION=5.35.0
INTEGRITY=sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ==
FILES=(LICENSE NOTICE swagger-ui.css swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt favicon-16x16.png favicon-32x32.png)
DEST=gateway/docsui/dist

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "$PACKAGE@$VERSION" >/dev/null)
tarball="$tmp/$PACKAGE-$VERSION.tgz"
got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [[ "$got" != "$INTEGRITY" ]]; then
  echo "docsui: $PACKAGE@$VERSION integrity mismatch: got $got, want $INTEGRITY" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$tmp"

out=$DEST
if [[ "${1:-}" == "--check" ]]; then
  out="$tmp/out"
fi
mkdir -p "$out"
for f in "${FILES[@]}"; do
  cp "$tmp/package/$f" "$out/$f"
done
printf '%s@%s\n%s\n' "$PACKAGE" "$VERSION" "$INTEGRITY" >"$out/VERSION"

if [[ "${1:-}" == "--check" ]]; then
  diff -r "$out" "$DEST" && echo "docsui: $DEST matches $PACKAGE@$VERSION"
else
  echo "docsui: wrote ${#FILES[@]} files of $PACKAGE@$VERSION to $DEST"
fi
