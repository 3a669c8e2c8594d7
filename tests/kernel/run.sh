#!/usr/bin/env bash
# Runs the kernel's tests: installs Jupyter from Debian's packages if needed, then
# go test ./kernel/... (unit tests, jupyter_kernel_test with Go samples, nbconvert on a
# notebook whose cell panics, which must fail, and `mmft kernel doctor`).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tests/kernel/deps.sh
go test -count=1 -timeout 20m "$@" ./kernel/...
