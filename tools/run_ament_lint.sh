#!/usr/bin/env bash
# Copyright 2026 dfmvr maintainers
# SPDX-License-Identifier: Apache-2.0
#
# The ROS 2 lint tests (test/ament: ament_copyright, ament_flake8, ament_pep257, ament_xmllint) with Debian's
# python3-ament-* packages (bookworm: 0.13.2) and the SYSTEM python3 they install into, not the project's venv
# (where those tests skip). Installs the packages first when they are missing and we are root (CI); otherwise
# says what to install. Exits non-zero on any lint failure, or when a linter is missing.
#
#   tools/run_ament_lint.sh            # all four
#   tools/run_ament_lint.sh -k flake8  # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=/usr/bin/python3
PACKAGES=(python3-ament-copyright python3-ament-flake8 python3-ament-pep257 python3-ament-xmllint python3-pytest)

missing=()
for package in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if ((${#missing[@]})); then
    if [[ "$(id -u)" -eq 0 ]]; then
        echo "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "missing Debian packages: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
        exit 2
    fi
fi

# A linter that cannot be imported would make its test skip; here that is an error.
"$PYTHON" -c "import ament_copyright.main, ament_flake8.main, ament_pep257.main, ament_xmllint.main, pytest"

# --noconftest: test/conftest.py needs the venv's numpy/torch, which the system python does not have.
exec "$PYTHON" -m pytest -q --noconftest -p no:cacheprovider test/ament "$@"
