#!/usr/bin/env bash
# Installs what the kernel's tests (go test ./kernel/...) need from Debian's packages:
# Jupyter's client, nbconvert/nbclient and jupyter_kernel_test. Safe to rerun; does
# nothing when they are there. scripts/test.sh runs it before `go test`.
set -euo pipefail
have() {
	/usr/bin/python3 -c "import jupyter_kernel_test, jupyter_client, nbclient, nbconvert" 2>/dev/null &&
		command -v jupyter >/dev/null
}
if have; then
	exit 0
fi
echo "== installing Jupyter for the kernel tests (Debian packages)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
	python3-jupyter-kernel-test jupyter-client jupyter-nbconvert python3-nbclient python3-ipykernel >/dev/null
have || { echo "tests/kernel/deps.sh: Jupyter still missing after apt-get install" >&2; exit 1; }
