#!/usr/bin/env bash
# Install the Node tools vp3d's tests use on glTF files (the Khronos glTF Validator, three.js's
# GLTFLoader) into tools/gltf/node_modules, exactly as pinned by tools/gltf/package-lock.json.
# Safe to run again: when node_modules already matches the lock file it returns at once.
set -euo pipefail
cd "$(dirname "$0")/../tools/gltf"
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || {
  echo "setup_node_tools.sh needs node (18 or newer) and npm on PATH; install Node.js, e.g. apt-get install nodejs npm" >&2
  exit 1; }
node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 18 ? 1 : 0)' || {
  echo "setup_node_tools.sh needs node 18 or newer (found $(node --version))" >&2; exit 1; }
# After a complete install npm leaves node_modules/.package-lock.json listing what it installed;
# when that matches the committed lock file, skip `npm ci` (which always deletes node_modules).
installed_matches_lock() {
  node -e '
    const fs = require("fs");
    const pinned = (file) => JSON.stringify(Object.entries(JSON.parse(fs.readFileSync(file, "utf8")).packages)
      .filter(([where]) => where !== "").map(([where, p]) => [where, p.version, p.integrity]).sort());
    process.exit(pinned("package-lock.json") === pinned("node_modules/.package-lock.json") ? 0 : 1);
  ' 2>/dev/null
}
if installed_matches_lock; then
  echo "tools/gltf/node_modules already matches package-lock.json"
else
  npm ci --no-audit --no-fund
fi
node -e 'import("gltf-validator").then(v => import("three").then(t => console.log(`gltf-validator ${v.version()}, three r${t.REVISION} are installed in tools/gltf/node_modules`)))'
