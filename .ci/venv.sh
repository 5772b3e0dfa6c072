#!/usr/bin/env bash
# A virtual environment for the Python tools CI uses, with the pinned versions of
# .ci/requirements.txt: a stock Debian refuses `pip install` into the system interpreter (PEP 668).
# Source it:
#
#     source .ci/venv.sh
#
# Creates target/ci-venv once (FLASHSALE_CI_VENV overrides the folder; Debian's python3-venv is
# installed when `python3 -m venv` is missing), installs the requirements again only when they
# changed, and puts the environment's bin/ first on PATH.

ci_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ci_venv=${FLASHSALE_CI_VENV:-$ci_root/target/ci-venv}
ci_requirements=$ci_root/.ci/requirements.txt

if [ ! -x "$ci_venv/bin/python" ]; then
    if ! python3 -m venv "$ci_venv" >/dev/null 2>&1; then
        rm -rf "$ci_venv"
        echo "venv.sh: python3 -m venv failed; installing Debian's python3-venv"
        ci_sudo=""
        [ "$(id -u)" -ne 0 ] && ci_sudo=sudo
        $ci_sudo apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive $ci_sudo apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv "$ci_venv" || { echo "venv.sh: cannot create $ci_venv" >&2; return 1 2>/dev/null || exit 1; }
    fi
fi
if ! cmp -s "$ci_requirements" "$ci_venv/requirements.txt"; then
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$ci_venv/bin/python" -m pip install --quiet \
        -r "$ci_requirements" \
        || { echo "venv.sh: pip install -r $ci_requirements failed" >&2; return 1 2>/dev/null || exit 1; }
    cp "$ci_requirements" "$ci_venv/requirements.txt"
fi
case ":$PATH:" in
    *":$ci_venv/bin:"*) ;;
    *) export PATH="$ci_venv/bin:$PATH" ;;
esac
echo "venv.sh: $ci_venv ($("$ci_venv/bin/python" --version 2>&1), requirements of .ci/requirements.txt)"
