#!/usr/bin/env bash
# Refreshes constraints.txt, the versions the Docker image and CI install: every
# dependency of hjr with its test and export extras, as pip resolves them today in a
# fresh virtual environment of this Python (use the image's, CPython 3.11).
#   run_scripts/refresh_constraints.sh            # from the project root
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$(mktemp -d)"
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q -e "$root[test]"
{
    echo "# The versions the Docker image and CI install (pip install -c constraints.txt),"
    echo "# resolved on $("$venv/bin/python" -c 'import platform; print("CPython", platform.python_version(), platform.system(), platform.machine())')."
    echo "# Refresh: run_scripts/refresh_constraints.sh"
    "$venv/bin/pip" freeze --exclude-editable
} >"$root/constraints.txt.new"
mv "$root/constraints.txt.new" "$root/constraints.txt"
echo "wrote $root/constraints.txt ($(grep -c '==' "$root/constraints.txt") pins)"
