#!/usr/bin/env bash
# Fetches CUDA's cuda.h and its link stub libcuda.so from Debian's nvidia-cuda-dev (non-free)
# into DIR (default /tmp/mmft-cuda), without installing anything or editing the system's apt
# sources: a private apt state lists bookworm's main+contrib+non-free, `apt-get download` takes
# the .deb (a 774 MB download) and only the two files are kept. Prints the CGO variables that
# `go build -tags cuda` needs. Safe to rerun (skips when DIR already holds them).
#
#   eval "$(bash tests/cuda/fetch.sh /tmp/mmft-cuda)"   # sets CGO_CFLAGS and CGO_LDFLAGS
set -euo pipefail
dir=${1:-/tmp/mmft-cuda}
inc=$dir/usr/include stubs=$dir/usr/lib/x86_64-linux-gnu/stubs
if [[ ! -f $inc/cuda.h || ! -f $stubs/libcuda.so ]]; then
	codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
	apt=$dir/apt
	mkdir -p "$apt/lists/partial" "$apt/archives/partial"
	echo "deb http://deb.debian.org/debian $codename main contrib non-free non-free-firmware" >"$apt/sources.list"
	opts=(-o Dir::Etc::sourcelist="$apt/sources.list" -o Dir::Etc::sourceparts=/nonexistent
		-o Dir::State::Lists="$apt/lists" -o Dir::Cache="$apt" -o Dir::Cache::archives="$apt/archives"
		-o APT::Sandbox::User=root)
	echo "tests/cuda/fetch.sh: downloading nvidia-cuda-dev (about 774 MB) for cuda.h and the libcuda stub" >&2
	apt-get "${opts[@]}" update -qq >&2
	(cd "$apt/archives" && apt-get "${opts[@]}" download nvidia-cuda-dev >&2)
	dpkg-deb --fsys-tarfile "$apt"/archives/nvidia-cuda-dev_*.deb |
		tar -x -C "$dir" ./usr/include/cuda.h ./usr/lib/x86_64-linux-gnu/stubs/libcuda.so
	rm -rf "$apt"
fi
echo "export CGO_CFLAGS='-I$inc' CGO_LDFLAGS='-L$stubs'"
