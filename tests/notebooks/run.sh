#!/usr/bin/env bash
# The notebooks' CI (CPU, the embedded default): installs the kernel into a private Jupyter
# folder; executes notebooks/01_data, 02_grpo_train and 03_eval headless with nbconvert
# (nbclient) and checks their outputs (no error, displays present, metrics recorded); exports
# 02_grpo_train with `mmft export`, runs the export in-process and checks that it reproduces
# the notebook's rewards per step (same seed); then opens 01_data, outputs cleared, in Debian's
# jupyter-notebook in headless Chromium, presses Cell > Run All through the DevTools protocol
# (tests/notebooks/browser, chromedp), waits for the kernel to finish, checks the page shows
# this session's outputs with no error, and checks the screenshot is not blank.
# Installs Jupyter and Chromium from Debian's packages when missing. Artifacts (executed
# notebooks, screenshot, logs) go to $MMFT_NOTEBOOK_ARTIFACTS (default: a temporary folder).
# MMFT_NOTEBOOK_STEPS picks steps (default "nbconvert export browser"; export needs nbconvert).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
bash tests/kernel/deps.sh
if ! command -v chromium >/dev/null || ! /usr/bin/python3 -c "import notebook" 2>/dev/null; then
	echo "== installing Chromium and jupyter-notebook (Debian packages)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium jupyter-notebook >/dev/null
fi
py=/usr/bin/python3
steps=" ${MMFT_NOTEBOOK_STEPS:-nbconvert export browser} "
step() { [[ $steps == *" $1 "* ]]; }

tmp=$(mktemp -d)
art=${MMFT_NOTEBOOK_ARTIFACTS:-$tmp/artifacts}
mkdir -p "$art"
server_pid=
cleanup() {
	[[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null || true
	# The worker the cells started (it would also end by its idle timeout).
	for f in "$tmp"/run/mmft/worker-*.json; do
		[[ -f "$f" ]] && kill "$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$f")" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

echo "== build mmft and install the kernel"
go build -o "$tmp/mmft" ./cmd/mmft
export JUPYTER_DATA_DIR=$tmp/jupyter JUPYTER_CONFIG_DIR=$tmp/jupyter-config JUPYTER_RUNTIME_DIR=$tmp/jupyter-runtime
export XDG_RUNTIME_DIR=$tmp/run # the worker's connection file: private to this run
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
export GOPROXY=off MMFT_DEVICE=cpu
"$tmp/mmft" kernel install --user --source "$root" >/dev/null

work=$tmp/work
mkdir -p "$work"
cp notebooks/*.ipynb "$work/"
if step nbconvert; then
	echo "== execute the notebooks (nbconvert)"
	for nb in 01_data 02_grpo_train 03_eval; do
		start=$SECONDS
		jupyter nbconvert --to notebook --execute --ExecutePreprocessor.kernel_name=mmft \
			--ExecutePreprocessor.timeout=900 --output-dir "$art" "$work/$nb.ipynb" >"$art/$nb.log" 2>&1 ||
			{ cat "$art/$nb.log"; echo "tests/notebooks: $nb failed" >&2; exit 1; }
		echo "$nb: $((SECONDS - start)) s"
	done
	"$py" tests/notebooks/check.py notebooks "$art"
fi

if step export; then
	echo "== export 02_grpo_train and run it in-process"
	"$tmp/mmft" export "$work/02_grpo_train.ipynb" -o "$tmp/export" --mmft "$root" >/dev/null
	rm -rf "$work/runs"
	(cd "$work" && env -u MMFT_EXECUTABLE "$tmp/export/run.sh") >"$art/export.out" 2>"$art/export.err" ||
		{ cat "$art/export.err"; echo "tests/notebooks: the export failed" >&2; exit 1; }
	"$py" tests/notebooks/check.py export "$art" "$art/export.out"
fi

if step browser; then
	echo "== run 01_data in jupyter-notebook's page in headless Chromium (Cell > Run All over the DevTools protocol)"
	go build -o "$tmp/browser" ./tests/notebooks/browser
	# A copy with no outputs and no execution counts: every output the page shows comes from this session.
	"$py" - notebooks/01_data.ipynb "$work/ui_01_data.ipynb" <<-'PY'
	import json, sys
	nb = json.load(open(sys.argv[1]))
	for c in nb["cells"]:
	    if c["cell_type"] == "code":
	        c["outputs"], c["execution_count"] = [], None
	json.dump(nb, open(sys.argv[2], "w"), indent=1)
	PY
	port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	token=$("$py" -c 'import secrets; print(secrets.token_hex(16))')
	"$py" -m notebook --no-browser --ip=127.0.0.1 --port="$port" --NotebookApp.token="$token" \
		--notebook-dir="$work" --allow-root >"$art/server.log" 2>&1 &
	server_pid=$!
	for _ in $(seq 60); do
		curl -fs "http://127.0.0.1:$port/api/status?token=$token" >/dev/null 2>&1 && break
		sleep 1
	done
	start=$SECONDS
	"$tmp/browser" --url "http://127.0.0.1:$port/notebooks/ui_01_data.ipynb?token=$token" --timeout 10m \
		--screenshot "$art/notebook.png" --dom "$art/notebook-outputs.html" \
		--want '<img src="data:image/' --want 'samples, bad rows' --want 'image tokens' --want '<|image_pad|>' ||
		{ tail -20 "$art/server.log"; echo "tests/notebooks: the notebook did not run in the browser" >&2; exit 1; }
	echo "browser run: $((SECONDS - start)) s"
	"$py" tests/notebooks/check.py screenshot "$art/notebook.png"
	grep -q "Kernel started" "$art/server.log" || { cat "$art/server.log"; echo "tests/notebooks: the page started no kernel" >&2; exit 1; }
fi

echo "tests/notebooks: ok ($SECONDS s; set MMFT_NOTEBOOK_ARTIFACTS=DIR to keep the executed notebooks and the screenshot)"
