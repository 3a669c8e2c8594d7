#!/usr/bin/env bash
# The project's test command (README "Quick start"): formatting, vet and every test.
# Installs what it needs on a fresh Debian machine with Go; safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v gcc >/dev/null || need_apt+=(gcc libc6-dev) # cgo: GoMLX's XLA backend loads PJRT plugins with dlopen
command -v git >/dev/null || need_apt+=(git)
if ((${#need_apt[@]})); then
	apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"
fi

export CGO_ENABLED=1
go version
echo "== go mod download"
go mod download

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*'))
if [[ -n "$unformatted" ]]; then
	echo "gofmt would change these files:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== go test"
if [[ ! -d ../shared ]] && [[ -z "${MMFT_SHARED:-}" ]]; then
	echo "note: ../shared is absent: tests that compare against the reference fixtures will skip"
fi
go test -count=1 -timeout 20m "$@" ./...
