#!/usr/bin/env bash
# Checks the Terraform without cloud access or the terraform binary:
#   1. every .tf file parses with a real HCL parser (npm @cdktf/hcl2json, the HCL
#      library Terraform itself uses, compiled to wasm);
#      user-data templates, rendered with placeholders, pass `bash -n`;
#   2. checkov reports no failed checks (skips must be inline, with a written reason:
#      #checkov:skip=CKV_...:why).
# Tools are installed on first use under $DEV_TOOLING_DIR (default ~/.cache/strata-tooling),
# never into the repository.
set -euo pipefail
cd "$(dirname "$0")"

TOOLING="${DEV_TOOLING_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/strata-tooling}"
HCL2JSON_VERSION="0.21.0"
CHECKOV_VERSION="3.3.30"
mkdir -p "$TOOLING"

# ---------------------------------------------------------------- 1. HCL parse
HCL_DIR="$TOOLING/hcl2json-$HCL2JSON_VERSION"
if [ ! -d "$HCL_DIR/node_modules/@cdktf/hcl2json" ]; then
    echo "-- installing @cdktf/hcl2json@$HCL2JSON_VERSION under $HCL_DIR"
    mkdir -p "$HCL_DIR"
    (cd "$HCL_DIR" && npm install --no-save --no-audit --no-fund --silent \
        "@cdktf/hcl2json@$HCL2JSON_VERSION" >/dev/null)
fi

mapfile -t TF_FILES < <(find . -name '*.tf' -not -path './.tooling/*' -not -path '*/.terraform/*' | sort)
if [ "${#TF_FILES[@]}" -eq 0 ]; then
    echo "no .tf files found" >&2
    exit 1
fi
NODE_PATH="$HCL_DIR/node_modules" node - "${TF_FILES[@]}" <<'JS'
const fs = require("fs");
const { parse } = require("@cdktf/hcl2json");
(async () => {
  let failed = 0;
  for (const file of process.argv.slice(2)) {
    try {
      const json = await parse(file, fs.readFileSync(file, "utf8"));
      const kinds = Object.keys(json).join(", ") || "empty";
      console.log(`parsed ${file} (${kinds})`);
    } catch (e) {
      failed++;
      console.error(`PARSE ERROR ${file}: ${e && e.message ? e.message : e}`);
    }
  }
  if (failed) {
    console.error(`${failed} file(s) failed to parse`);
    process.exit(1);
  }
})();
JS

# User-data templates must be valid bash once Terraform fills them in: substitute every
# ${...} with a placeholder and let bash parse the result.
for tpl in $(find . -name '*.sh.tftpl' -not -path './.tooling/*' | sort); do
    python3 - "$tpl" >"${TMPDIR:-/tmp}/strata-user-data.$$.sh" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
if "%{" in text:
    sys.exit(f"{sys.argv[1]}: template directives are not checked here; keep user data plain")
print(re.sub(r"\$\{[^}]*\}", "placeholder", text), end="")
PY
    if bash -n "${TMPDIR:-/tmp}/strata-user-data.$$.sh"; then
        echo "bash -n $tpl: ok"
    else
        echo "BASH SYNTAX ERROR in $tpl" >&2
        rm -f "${TMPDIR:-/tmp}/strata-user-data.$$.sh"
        exit 1
    fi
    rm -f "${TMPDIR:-/tmp}/strata-user-data.$$.sh"
done

# ---------------------------------------------------------------- 2. checkov
VENV="$TOOLING/checkov-$CHECKOV_VERSION"
if [ ! -x "$VENV/bin/checkov" ]; then
    echo "-- installing checkov==$CHECKOV_VERSION under $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "checkov==$CHECKOV_VERSION"
fi
# --skip-download: no Bridgecrew platform calls, no external modules; local modules
# (../../modules/strata-cluster) are still followed.
"$VENV/bin/checkov" -d . --framework terraform --skip-download --quiet --compact \
    --output cli
echo "terraform check: OK"
