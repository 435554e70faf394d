# Sourced by scripts/test, or run on its own (`scripts/lib/axe.sh`): ensure_axe puts a
# pinned axe-core, the accessibility engine that the panel's end-to-end test
# (admin/tests/panel.rs) runs in the browser, at target/axe-core/, from the npm registry.
# Node.js and npm come from Debian when missing, as chromium does in scripts/test.
# shellcheck shell=bash

AXE_CORE_VERSION=4.14.1
# The SHA-256 of that release's axe.min.js, as its own sri-history.json records it: the
# script injected into the page is exactly the one pinned here, whatever the registry
# or a cache serves.
AXE_CORE_SHA256=29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c

# Whether $1 is the pinned axe.min.js.
axe_is_pinned() {
    [[ -f "$1" ]] && [[ "$(sha256sum "$1" | cut -d' ' -f1)" == "$AXE_CORE_SHA256" ]]
}

ensure_axe() {
    local dir="${CARGO_TARGET_DIR:-target}/axe-core"
    local file="$dir/node_modules/axe-core/axe.min.js"
    if ! axe_is_pinned "$file"; then
        if ! command -v npm >/dev/null; then
            local sudo=()
            [[ $(id -u) -eq 0 ]] || sudo=(sudo)
            # A fresh machine's package lists may be missing or stale: update, then retry.
            "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm ||
                { "${sudo[@]}" apt-get update -q &&
                    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm; }
        fi
        rm -rf "$dir"
        mkdir -p "$dir"
        # Into a directory of its own, with no package.json, lockfile or install scripts.
        npm install --prefix "$dir" --no-save --no-package-lock --ignore-scripts \
            --no-audit --no-fund --loglevel=error "axe-core@$AXE_CORE_VERSION"
        if ! axe_is_pinned "$file"; then
            echo "error: $file is not axe-core $AXE_CORE_VERSION's axe.min.js" \
                "(SHA-256 $AXE_CORE_SHA256)" >&2
            exit 1
        fi
    fi
    echo "axe-core $AXE_CORE_VERSION at $file"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    cd "$(dirname "$0")/../.."
    ensure_axe
fi
