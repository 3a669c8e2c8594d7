#!/usr/bin/env bash
# CI for the cuda build (cudainfo through gorgonia.org/cu): runs only where CUDA's cuda.h is
# found ($CUDA_PATH/include, /usr/local/cuda/include, /usr/include, or $MMFT_CUDA_DIR from
# tests/cuda/fetch.sh); elsewhere it says so and passes. Set MMFT_CUDA_FETCH=1 to fetch the
# header and stub first (a 774 MB download from Debian non-free, ~40 s; off by default).
# Checks: go vet -tags cuda of the packages that use it; with CUDA's link stub libcuda.so,
# cudainfo's tests and a cuda build of mmft whose `mmft env` must report the driver's refusal
# (CUDA_ERROR_STUB_LIBRARY) and exit 0 instead of exiting in gorgonia.org/cu's initializer.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ "${MMFT_CUDA_FETCH:-}" == 1 ]]; then
	eval "$(bash tests/cuda/fetch.sh "${MMFT_CUDA_DIR:=/tmp/mmft-cuda}")"
fi
inc=
for d in ${MMFT_CUDA_DIR:+$MMFT_CUDA_DIR/usr/include} ${CUDA_PATH:+$CUDA_PATH/include} /usr/local/cuda/include /usr/include; do
	[[ -f $d/cuda.h ]] && { inc=$d; break; }
done
if [[ -z $inc ]]; then
	echo "tests/cuda: skipped: no cuda.h (MMFT_CUDA_FETCH=1 fetches it from Debian's nvidia-cuda-dev, 774 MB)"
	exit 0
fi
stub=
for d in ${MMFT_CUDA_DIR:+$MMFT_CUDA_DIR/usr/lib/x86_64-linux-gnu/stubs} ${CUDA_PATH:+$CUDA_PATH/lib64/stubs} \
	/usr/local/cuda/lib64/stubs /usr/lib/x86_64-linux-gnu/stubs; do
	[[ -f $d/libcuda.so ]] && { stub=$d; break; }
done
export CGO_ENABLED=1 CGO_CFLAGS="${CGO_CFLAGS:-} -I$inc" CGO_LDFLAGS="${CGO_LDFLAGS:-}${stub:+ -L$stub}"
echo "== go vet -tags cuda (cuda.h from $inc)"
go vet -tags cuda ./cudainfo ./compute ./mmft ./cmd/mmft
if [[ -z $stub ]]; then
	echo "tests/cuda: no libcuda.so link stub found: vet only"
	exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ln -s "$stub/libcuda.so" "$tmp/libcuda.so.1"
if ldconfig -p 2>/dev/null | grep -q 'libcuda.so.1 '; then
	echo "== go test -tags cuda ./cudainfo (the machine's NVIDIA driver)"
	go test -count=1 -tags cuda ./cudainfo
	exit 0
fi
echo "== cuda build of mmft on the link stub (no GPU): must fall back, not exit"
go test -count=1 -tags cuda -c -o "$tmp/cudainfo.test" ./cudainfo
LD_LIBRARY_PATH=$tmp "$tmp/cudainfo.test" -test.count=1
go build -tags cuda -o "$tmp/mmft" ./cmd/mmft
out=$(LD_LIBRARY_PATH=$tmp MMFT_DEVICE=cpu "$tmp/mmft" env) || { echo "$out"; echo "tests/cuda: mmft env failed" >&2; exit 1; }
grep -q 'cuda driver:  unavailable: .*CUDA_ERROR_STUB_LIBRARY' <<<"$out" ||
	{ echo "$out"; echo "tests/cuda: mmft env does not report the stub's refusal" >&2; exit 1; }
echo "tests/cuda: ok"
