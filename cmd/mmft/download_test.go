package main

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDownloadCommand runs `mmft download` against a small in-process Hub
// serving one dataset with one file, then again offline.
func TestDownloadCommand(t *testing.T) {
	const commit = "0123456789abcdef0123456789abcdef01234567"
	content := []byte("a,b\n1,2\n")
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(content))
	h.Write(content)
	etag := hex.EncodeToString(h.Sum(nil))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/datasets/org/table/revision/main":
			fmt.Fprintf(w, `{"sha": %q, "siblings": [{"rfilename": "data/train.csv"}, {"rfilename": "README.md"}]}`, commit)
		case "/datasets/org/table/resolve/" + commit + "/data/train.csv":
			w.Header().Set("X-Repo-Commit", commit)
			w.Header().Set("ETag", `"`+etag+`"`)
			w.Header().Set("Content-Length", strconv.Itoa(len(content)))
			if r.Method == http.MethodGet {
				w.Write(content)
			}
		default:
			w.Header().Set("X-Error-Code", "RepoNotFound")
			http.Error(w, "not found", http.StatusNotFound)
		}
	}))
	defer srv.Close()
	cache := t.TempDir()
	t.Setenv("HF_ENDPOINT", srv.URL)
	t.Setenv("HF_HUB_CACHE", cache)
	t.Setenv("HF_TOKEN", "")
	t.Setenv("HF_HUB_OFFLINE", "")

	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := (&cli{ctx: context.Background(), stdin: strings.NewReader(""), stdout: &out, stderr: &errb}).main(args)
		return code, out.String(), errb.String()
	}
	code, out, errs := run("download", "--dataset", "--include", "*.csv", "--quiet", "org/table")
	want := filepath.Join(cache, "datasets--org--table", "snapshots", commit)
	if code != 0 || strings.TrimSpace(out) != want {
		t.Fatalf("exit %d, stdout %q, stderr %q; want %s", code, out, errs, want)
	}
	if b, err := os.ReadFile(filepath.Join(want, "data", "train.csv")); err != nil || !bytes.Equal(b, content) {
		t.Fatalf("downloaded file: %q, %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(want, "README.md")); err == nil {
		t.Error("README.md downloaded despite --include *.csv")
	}

	srv.Close()
	code, out, _ = run("download", "--dataset", "--offline", "--include", "*.csv", "org/table")
	if code != 0 || strings.TrimSpace(out) != want {
		t.Fatalf("offline: exit %d, stdout %q", code, out)
	}
	code, _, errs = run("download", "--offline", "org/table")
	if code != 1 || !strings.Contains(errs, "model org/table") || !strings.Contains(errs, "offline") {
		t.Errorf("offline, uncached model: exit %d, stderr %q", code, errs)
	}
	local := t.TempDir()
	if code, out, _ = run("download", local); code != 0 || strings.TrimSpace(out) != local {
		t.Errorf("local folder: exit %d, stdout %q", code, out)
	}
	if code, _, _ = run("download"); code != 2 {
		t.Errorf("no repository: exit %d, want 2", code)
	}
	if code, out, _ = run("download", "--help"); code != 0 || !strings.Contains(out, "--include") {
		t.Errorf("--help: exit %d, %q", code, out)
	}
}
