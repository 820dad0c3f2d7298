#!/usr/bin/env bash
# Set up mailprobe on a fresh Debian 12 machine: Debian packages (as root), a virtualenv
# in .venv and mailprobe installed into it. `--dev` adds the test and lint tools and keeps
# the sources pure Python; without it the log exporter's hot path is compiled by mypyc.
# Safe to run again: every step is idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[[ "${1:-}" == "--dev" ]] && extras="[dev]"

if [[ $(id -u) -ne 0 ]]; then
    SUDO=sudo
else
    SUDO=""
fi

# shellcheck source=scripts/apt-lock.sh
source scripts/apt-lock.sh

packages=$(grep -v '^\s*#' deploy/apt-packages.txt | grep -v '^\s*$' | tr '\n' ' ')
missing=$(dpkg-query -W -f='${Package} ${Status}\n' $packages 2>/dev/null \
    | awk '$NF != "installed" {print $1}' || true)
# dpkg-query prints nothing for packages it has never heard of: find those too.
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
missing=$(echo $missing | tr ' ' '\n' | sort -u | tr '\n' ' ')
if [[ -n "${missing// /}" ]]; then
    echo "setup: installing Debian packages: $missing"
    # Postfix asks how to configure itself; the lab runs its own instances, so "Local only".
    retry_while_locked $SUDO sh -c \
        'echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections'
    retry_while_locked $SUDO "${APT[@]}" update -q
    retry_while_locked $SUDO env DEBIAN_FRONTEND=noninteractive \
        "${APT[@]}" install -y -q --no-install-recommends $missing
    # Debian starts daemons on install where it can; the lab runs its own, so stop the stock
    # ones. Only right after installing: some init scripts (opendkim, opendmarc) stop by
    # executable name, which would also kill a running lab's daemons.
    for svc in postfix dovecot opendkim opendmarc knot unbound postsrsd prometheus prometheus-alertmanager; do
        if command -v service >/dev/null && service "$svc" status >/dev/null 2>&1; then
            $SUDO service "$svc" stop >/dev/null 2>&1 || true
        fi
    done
fi

python3 -m venv .venv
# setuptools 77 reads the SPDX `project.license` string; the in-place mypyc build
# (below, bench/trees.py, tests/test_compiled_build.py) uses the venv's own setuptools.
.venv/bin/pip install -q --upgrade pip "setuptools>=77"
# setuptools says, as a warning, that an editable install finds the packages with a
# meta path finder: information for packagers, not for someone setting up mailprobe.
PYTHONWARNINGS="ignore:Editable installation.:UserWarning" .venv/bin/pip install -q -e ".$extras"
# sslyze (the TLS quality scan) in its own environment: its cryptography pin conflicts
# with parsedmarc's (deploy/requirements-sslyze.txt). mailprobe runs it as a subprocess.
[[ -x .venv/sslyze/bin/python ]] || python3 -m venv .venv/sslyze
.venv/sslyze/bin/pip install -q -r deploy/requirements-sslyze.txt
# Compiled modules sit beside the sources they replace (setup.py, docs/performance.md).
rm -f exporters/postfix_logs/*.so
if [[ -z "$extras" ]]; then
    # The log exporter's per-line path, compiled by mypyc: about 1.8x faster.
    # setup.py runs with the venv's own setuptools: as new as [build-system] requires.
    .venv/bin/pip install -q "mypy>=1.10" "setuptools>=77" wheel
    if MAILPROBE_MYPYC=1 .venv/bin/python setup.py -q build_ext --inplace >.venv/mypyc-build.log 2>&1; then
        echo "setup: log exporter compiled with mypyc"
    else
        rm -f exporters/postfix_logs/*.so
        echo "setup: mypyc build failed (.venv/mypyc-build.log); the log exporter runs as pure Python" >&2
    fi
fi
echo "setup: done; mailprobe is .venv/bin/mailprobe"
