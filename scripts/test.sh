#!/usr/bin/env bash
# The project's test command (README "Quick start"): formatting, vet and every test.
# Installs what it needs on a fresh Debian machine with Go; safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v gcc >/dev/null || need_apt+=(gcc libc6-dev) # cgo: GoMLX's XLA backend loads PJRT plugins with dlopen
command -v git >/dev/null || need_apt+=(git)
command -v python3 >/dev/null || need_apt+=(python3) # tests/kprof/run.sh (the profiler's summary)
command -v nm >/dev/null || need_apt+=(binutils)
if ((${#need_apt[@]})); then
	apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"
fi

export CGO_ENABLED=1
go version
echo "== go mod download"
go mod download all   # the whole module graph: the kernel's offline `go doc` (inspect) loads it

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*'))
if [[ -n "$unformatted" ]]; then
	echo "gofmt would change these files:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== cuda build (gorgonia.org/cu; only where cuda.h is installed, or with MMFT_CUDA_FETCH=1)"
bash tests/cuda/run.sh

echo "== kernel profiler (bench/kprof: builds, and its summary adds up a known trace)"
bash tests/kprof/run.sh

echo "== test dependencies (Debian's Jupyter for the kernel tests; dockerfilelint from npm)"
bash tests/kernel/deps.sh
bash tests/docker/lint.sh
echo "== notebooks (kernel install, nbconvert of the three tutorials, export of 02, Run All in Chromium)"
bash tests/notebooks/run.sh

echo "== go test"
ci=false
case "${CI:-}" in true | TRUE | True | 1 | yes) ci=true ;; esac
if [[ ! -d ../shared ]] && [[ -z "${MMFT_SHARED:-}" ]]; then
	if $ci; then
		echo "error: CI=true but ../shared is absent and MMFT_SHARED is unset: the fixture tests cannot run." >&2
		echo "Provide the shared reference material beside the checkout, or set MMFT_SHARED to its folder." >&2
		exit 1
	fi
	echo "note: ../shared is absent: tests that compare against the reference fixtures will skip"
fi
if $ci; then
	# In CI a missing fixture fails its test (internal/shared), and the
	# medium bf16 precision bound runs too.
	export MMFT_PRECISION_MEDIUM=1
fi
go test -count=1 -timeout 20m "$@" ./...

# Fuzz targets, each for a bounded time (MMFT_FUZZTIME, default 10s; 0 skips).
# A crasher is written under the package's testdata/fuzz/ and fails the run;
# commit it as a regression case (plain `go test` replays it) with the fix.
fuzztime=${MMFT_FUZZTIME:-10s}
if [[ "$fuzztime" != 0 ]]; then
	echo "== fuzz ($fuzztime each)"
	for target in \
		./imageproc:FuzzDecode \
		./data:FuzzParquet \
		./safetensors:FuzzParse \
		./data/pylit:FuzzParse \
		./tokenizer:FuzzRoundTrip; do
		pkg=${target%%:*} name=${target#*:}
		echo "-- $pkg $name"
		# Go's fuzz engine can fail a target with a bare "context deadline
		# exceeded" when -fuzztime ends while it is minimizing a new input
		# (no crasher written): seen on FuzzParquet, whose inputs are whole
		# parquet files. Such a run is repeated once; a crasher never is.
		for attempt in 1 2; do
			if out=$(go test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" -fuzzminimizetime 10s "$pkg" 2>&1); then
				echo "$out"
				break
			fi
			echo "$out"
			if [[ $attempt == 1 ]] && grep -q "context deadline exceeded" <<<"$out" && ! grep -q "Failing input written" <<<"$out" &&
				[[ -z $(git status --porcelain -- "$pkg/testdata/fuzz" 2>/dev/null) ]]; then
				echo "-- $pkg $name: the fuzz engine stopped at its own deadline without a failing input; once more"
				continue
			fi
			exit 1
		done
	done
fi
