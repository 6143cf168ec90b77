#!/bin/sh
# Vendor Swagger UI's browser files into functions/image_similarity/swagger_ui/ from the npm package swagger-ui-dist,
# at a pinned version whose tarball must match the pinned integrity. The API Explorer serves these files itself:
# no CDN, so it works offline and in regions that can't reach one. To upgrade, change both pins and re-run.
set -eu
VERSION=5.35.0
INTEGRITY=sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ==
FILES="swagger-ui-bundle.js swagger-ui.css LICENSE NOTICE swagger-ui-bundle.js.LICENSE.txt"
DEST=$(cd "$(dirname "$0")/.." && pwd)/functions/image_similarity/swagger_ui

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "swagger-ui-dist@$VERSION" >/dev/null)
tarball="$work/swagger-ui-dist-$VERSION.tgz"
actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [ "$actual" != "$INTEGRITY" ]; then
    echo "swagger-ui-dist@$VERSION: integrity $actual, expected $INTEGRITY" >&2
    exit 1
fi
tar -xzf "$tarball" -C "$work"
mkdir -p "$DEST"
for f in $FILES; do cp "$work/package/$f" "$DEST/$f"; done  # byte-identical to the package
printf 'swagger-ui-dist@%s (npm), %s\nfiles: %s\nmade by scripts/vendor_swagger_ui.sh\n' \
    "$VERSION" "$INTEGRITY" "$FILES" > "$DEST/SOURCE"
echo "vendored swagger-ui-dist@$VERSION into $DEST"
