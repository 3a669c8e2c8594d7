package hub

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	commitA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	commitB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	commitC = "cccccccccccccccccccccccccccccccccccccccc"
)

// isolate clears every environment variable hub reads, so the developer's own
// token or cache never leaks into a test.
func isolate(t *testing.T) {
	t.Helper()
	for _, k := range []string{"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_ENDPOINT", "HF_HUB_CACHE",
		"HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "XDG_CACHE_HOME"} {
		t.Setenv(k, "")
	}
	t.Setenv("HF_HOME", t.TempDir())
}

func bigData(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func modelFiles() map[string]fakeFile {
	return map[string]fakeFile{
		"config.json":         {data: []byte(`{"model_type": "qwen2_vl"}` + "\n")},
		"model.safetensors":   {data: bigData(300_000), lfs: true},
		"sub/dir/vocab 1.txt": {data: []byte("hello\nworld\n")},
	}
}

func (h *fakeHub) opts(cache string) Options {
	return Options{Endpoint: h.hub.URL, CacheDir: cache}
}

func count(reqs []fakeRequest, server string) int {
	n := 0
	for _, r := range reqs {
		if r.server == server {
			n++
		}
	}
	return n
}

func TestDownloadSnapshotPythonLayout(t *testing.T) {
	isolate(t)
	h := newFakeHub(t)
	files := modelFiles()
	h.addRepo(Model, "org/tiny", commitA, files)
	cache := t.TempDir()
	var progress bytes.Buffer
	o := h.opts(cache)
	o.Progress = &progress
	dir, err := Download(context.Background(), "org/tiny", o)
	if err != nil {
		t.Fatal(err)
	}
	repoDir := filepath.Join(cache, "models--org--tiny")
	if want := filepath.Join(repoDir, "snapshots", commitA); dir != want {
		t.Fatalf("snapshot folder %s, want %s", dir, want)
	}
	for name, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, f.data) {
			t.Fatalf("%s: content differs (err %v)", name, err)
		}
		link, err := os.Readlink(p)
		if err != nil {
			t.Fatalf("%s is not a symlink: %v", name, err)
		}
		want := strings.Repeat("../", 2+strings.Count(name, "/")) + "blobs/" + f.etag()
		if link != filepath.FromSlash(want) {
			t.Errorf("%s -> %s, want %s", name, link, want)
		}
	}
	ref, err := os.ReadFile(filepath.Join(repoDir, "refs", "main"))
	if err != nil || string(ref) != commitA {
		t.Fatalf("refs/main = %q (%v), want %s without newline", ref, err, commitA)
	}
	blobs, _ := os.ReadDir(filepath.Join(repoDir, "blobs"))
	if len(blobs) != len(files) {
		t.Errorf("blobs: %d entries, want %d (no .incomplete left)", len(blobs), len(files))
	}
	if !strings.Contains(progress.String(), "model.safetensors") {
		t.Errorf("no progress bar for model.safetensors on the progress writer: %q", progress.String())
	}
	// HEAD then GET for each file; the LFS GET goes to the CDN.
	reqs := h.takeRequests()
	if n := count(reqs, "cdn"); n != 1 {
		t.Errorf("%d CDN requests, want 1: %+v", n, reqs)
	}

	// A second download fetches nothing but the file list.
	o.Progress = nil
	dir2, err := Download(context.Background(), "org/tiny", o)
	if err != nil || dir2 != dir {
		t.Fatalf("second download: %s, %v", dir2, err)
	}
	reqs = h.takeRequests()
	if len(reqs) != 1 || !strings.HasPrefix(reqs[0].path, "/api/models/org/tiny/revision/main") {
		t.Errorf("second download made requests %+v, want only the revision API call", reqs)
	}
}

func TestIncludeExcludePatterns(t *testing.T) {
	isolate(t)
	h := newFakeHub(t)
	h.addRepo(Model, "org/tiny", commitA, modelFiles())
	cache := t.TempDir()
	o := h.opts(cache)
	o.Include = []string{"*.json", "sub/"}
	o.Exclude = []string{"*.txt"}
	dir, err := Download(context.Background(), "org/tiny", o)
	if err != nil {
		t.Fatal(err)
	}
	got, _, _ := cachedFiles(dir)
	if strings.Join(got, ",") != "config.json" {
		t.Errorf("files %v, want only config.json", got)
	}
	o.Include, o.Exclude = []string{"*.bin"}, nil
	_, err = Download(context.Background(), "org/tiny", o)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"*.bin"`) || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("pattern matching nothing: %v", err)
	}
}

func TestMatchFnmatchRules(t *testing.T) {
	for _, c := range []struct {
		pat, name string
		want      bool
	}{
		{"*.json", "config.json", true},
		{"*.json", "sub/config.json", true}, // fnmatch's * crosses "/"
		{"*.json", "config.jsonl", false},
		{"model-?.bin", "model-1.bin", true},
		{"model-[0-9].bin", "model-7.bin", true},
		{"model-[!0-9].bin", "model-7.bin", false},
		{"onnx/", "onnx/model.onnx", true},
		{"onnx/", "onnx.txt", false},
		{"a+b.txt", "a+b.txt", true},
		{"[", "[", true},
	} {
		got, err := Match(c.pat, c.name)
		if err != nil || got != c.want {
			t.Errorf("Match(%q, %q) = %v, %v; want %v", c.pat, c.name, got, err, c.want)
		}
	}
}

func TestResumeAfterConnectionCut(t *testing.T) {
	isolate(t)
	h := newFakeHub(t)
	files := modelFiles()
	h.addRepo(Model, "org/tiny", commitA, files)
	etag := files["model.safetensors"].etag()
	h.cutAfter[etag] = 100_000
	cache := t.TempDir()
	o := h.opts(cache)
	o.Include = []string{"model.safetensors"}
	dir, err := Download(context.Background(), "org/tiny", o)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "model.safetensors"))
	if err != nil || !bytes.Equal(got, files["model.safetensors"].data) {
		t.Fatalf("resumed file differs (%v)", err)
	}
	var ranges []string
	for _, r := range h.takeRequests() {
		if r.server == "cdn" {
			ranges = append(ranges, r.rng)
		}
	}
	if len(ranges) != 2 || ranges[0] != "" || ranges[1] != "bytes=100000-" {
		t.Errorf("CDN requests with ranges %q, want a full GET then bytes=100000-", ranges)
	}
}

func TestResumeIncompleteFromEarlierRun(t *testing.T) {
	isolate(t)
	h := newFakeHub(t)
	files := modelFiles()
	h.addRepo(Model, "org/tiny", commitA, files)
	data := files["model.safetensors"].data
	etag := files["model.safetensors"].etag()
	cache := t.TempDir()
	blobs := filepath.Join(cache, "models--org--tiny", "blobs")
	os.MkdirAll(blobs, 0o755)
	if err := os.WriteFile(filepath.Join(blobs, etag+".incomplete"), data[:123_456], 0o644); err != nil {
		t.Fatal(err)
	}
	o := h.opts(cache)
	o.Include = []string{"model.safetensors"}
	dir, err := Download(context.Background(), "org/tiny", o)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "model.safetensors")); !bytes.Equal(got, data) {
		t.Fatal("resumed file differs")
	}
	for _, r := range h.takeRequests() {
		if r.server == "cdn" && r.rng != "bytes=123456-" {
			t.Errorf("CDN request with Range %q, want bytes=123456-", r.rng)
		}
	}

	// A server that ignores Range restarts the file from zero and still verifies.
	h2 := newFakeHub(t)
	h2.addRepo(Model, "org/tiny", commitA, files)
	h2.ignoreRange = true
	cache2 := t.TempDir()
	blobs2 := filepath.Join(cache2, "models--org--tiny", "blobs")
	os.MkdirAll(blobs2, 0o755)
	os.WriteFile(filepath.Join(blobs2, etag+".incomplete"), data[:1000], 0o644)
	o2 := h2.opts(cache2)
	o2.Include = o.Include
	dir2, err := Download(context.Background(), "org/tiny", o2)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir2, "model.safetensors")); !bytes.Equal(got, data) {
		t.Fatal("file restarted after an ignored Range differs")
	}
}

func TestCorruptDownloadRejected(t *testing.T) {
	for _, c := range []struct {
		name  string
		serve func([]byte) []byte
	}{
		{"wrong sha256", func(d []byte) []byte { b := bytes.Clone(d); b[5000] ^= 1; return b }},
		{"too long", func(d []byte) []byte { return append(bytes.Clone(d), 'x') }},
		{"too short", func(d []byte) []byte { return d[:len(d)-10] }},
	} {
		t.Run(c.name, func(t *testing.T) {
			isolate(t)
			h := newFakeHub(t)
			files := modelFiles()
			h.addRepo(Model, "org/tiny", commitA, files)
			etag := files["model.safetensors"].etag()
			h.serve[etag] = c.serve(files["model.safetensors"].data)
			cache := t.TempDir()
			o := h.opts(cache)
			_, err := Download(context.Background(), "org/tiny", o)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), "model.safetensors") && !strings.Contains(err.Error(), "bytes") {
				t.Errorf("error does not say what failed: %v", err)
			}
			repoDir := filepath.Join(cache, "models--org--tiny")
			for _, p := range []string{"blobs/" + etag, "blobs/" + etag + ".incomplete", "snapshots/" + commitA + "/model.safetensors"} {
				if _, err := os.Lstat(filepath.Join(repoDir, p)); err == nil {
					t.Errorf("%s exists after a rejected download", p)
				}
			}
		})
	}
}

func TestCorruptRegularFileRejected(t *testing.T) {
	isolate(t)
	h := newFakeHub(t)
	files := modelFiles()
	repo := h.addRepo(Model, "org/tiny", commitA, files)
	// The Hub announces the git sha1 of other content of the same length.
	good := files["config.json"]
	bad := bytes.Clone(good.data)
	bad[0] = '['
	repo.commits[commitA]["config.json"] = fakeFile{data: bad}
	_ = good
	cache := t.TempDir()
	// Serve bad bytes under the good etag by swapping after HEAD: simplest is a
	// wrapper that rewrites the ETag header.
	h.hub.Config.Handler = etagRewriter{h.hub.Config.Handler, gitSHA1(bad), gitSHA1(good.data)}
	o := h.opts(cache)
	o.Include = []string{"config.json"}
	_, err := Download(context.Background(), "org/tiny", o)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "config.json") {
		t.Fatalf("got %v, want ErrCorrupt naming config.json", err)
	}
	if _, err := os.Lstat(filepath.Join(cache, "models--org--tiny", "blobs", gitSHA1(good.data))); err == nil {
		t.Error("bad content was placed in blobs")
	}
}

func TestTokenSentOnlyToTheHub(t *testing.T) {
	isolate(t)
	h := newFakeHub(t)
	repo := h.addRepo(Model, "org/private", commitA, modelFiles())
	repo.token = "hf_secret"
	cache := t.TempDir()

	_, err := Download(context.Background(), "org/private", h.opts(cache))
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "HF_TOKEN") {
		t.Fatalf("without a token: %v, want ErrUnauthorized mentioning HF_TOKEN", err)
	}
	h.takeRequests()

	t.Setenv("HF_TOKEN", "hf_secret")
	if _, err := Download(context.Background(), "org/private", h.opts(cache)); err != nil {
		t.Fatal(err)
	}
	reqs := h.takeRequests()
	for _, r := range reqs {
		switch r.server {
		case "hub":
			if r.auth != "Bearer hf_secret" {
				t.Errorf("hub request %s %s without the token", r.method, r.path)
			}
		case "cdn":
			if r.auth != "" {
				t.Errorf("token sent to the CDN (another origin): %s %s", r.method, r.path)
			}
		}
	}
	if count(reqs, "cdn") == 0 {
		t.Fatal("no CDN request made; the test does not cover redirects")
	}

	// The token file under HF_HOME is used when HF_TOKEN is unset.
	t.Setenv("HF_TOKEN", "")
	home := t.TempDir()
	t.Setenv("HF_HOME", home)
	os.WriteFile(filepath.Join(home, "token"), []byte("hf_secret\n"), 0o600)
	if _, err := Download(context.Background(), "org/private", h.opts(t.TempDir())); err != nil {
		t.Fatalf("with the token file: %v", err)
	}
}

func TestGatedAndNotFoundErrors(t *testing.T) {
	isolate(t)
	h := newFakeHub(t)
	gated := h.addRepo(Model, "org/gated", commitA, modelFiles())
	gated.token, gated.gated = "hf_x", true
	h.addRepo(Model, "org/tiny", commitA, modelFiles())
	cache := t.TempDir()
	ctx := context.Background()

	_, err := Download(ctx, "org/gated", h.opts(cache))
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "gated") || !strings.Contains(err.Error(), "HF_TOKEN") {
		t.Errorf("gated: %v", err)
	}
	_, err = Download(ctx, "org/missing", h.opts(cache))
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "org/missing") {
		t.Errorf("missing repo: %v", err)
	}
	o := h.opts(cache)
	o.Revision = "v9"
	_, err = Download(ctx, "org/tiny", o)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"v9"`) {
		t.Errorf("missing revision: %v", err)
	}
	_, err = DownloadFile(ctx, "org/tiny", "nope.json", h.opts(cache))
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "nope.json") {
		t.Errorf("missing file: %v", err)
	}
	o = h.opts(cache)
	o.RepoType = Dataset
	_, err = Download(ctx, "org/tiny", o)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "dataset org/tiny") {
		t.Errorf("missing dataset: %v", err)
	}
	for _, bad := range []string{"", "a/b/c", "a--b/c", "../x", "org/na me"} {
		if _, err := Download(ctx, bad, h.opts(cache)); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("repo id %q: %v, want a validation error", bad, err)
		}
	}
}

func TestOfflineMode(t *testing.T) {
	isolate(t)
	h := newFakeHub(t)
	h.addRepo(Model, "org/tiny", commitA, modelFiles())
	cache := t.TempDir()
	ctx := context.Background()
	o := h.opts(cache)
	o.Include = []string{"*.json", "*.safetensors"}
	dir, err := Download(ctx, "org/tiny", o)
	if err != nil {
		t.Fatal(err)
	}
	h.takeRequests()

	t.Setenv("HF_HUB_OFFLINE", "1")
	got, err := Download(ctx, "org/tiny", o)
	if err != nil || got != dir {
		t.Fatalf("offline: %s, %v; want %s", got, err, dir)
	}
	p, err := DownloadFile(ctx, "org/tiny", "config.json", h.opts(cache))
	if err != nil || p != filepath.Join(dir, "config.json") {
		t.Fatalf("offline DownloadFile: %s, %v", p, err)
	}
	if reqs := h.takeRequests(); len(reqs) != 0 {
		t.Fatalf("offline mode made requests: %+v", reqs)
	}

	o.Include = []string{"*.json", "*.txt", "tokenizer.json"}
	_, err = Download(ctx, "org/tiny", o)
	if !errors.Is(err, ErrNotCached) || !strings.Contains(err.Error(), `"*.txt"`) || !strings.Contains(err.Error(), `"tokenizer.json"`) ||
		!strings.Contains(err.Error(), "HF_HUB_OFFLINE") {
		t.Errorf("offline with missing files: %v", err)
	}
	o.Include, o.Revision = nil, "dev"
	_, err = Download(ctx, "org/tiny", o)
	if !errors.Is(err, ErrNotCached) || !strings.Contains(err.Error(), "main") {
		t.Errorf("offline with an uncached revision should list the cached ones: %v", err)
	}
	_, err = Download(ctx, "org/other", h.opts(cache))
	if !errors.Is(err, ErrNotCached) {
		t.Errorf("offline, uncached repo: %v", err)
	}
	// A missing blob behind a snapshot link counts as missing.
	etag := modelFiles()["model.safetensors"].etag()
	os.Remove(filepath.Join(cache, "models--org--tiny", "blobs", etag))
	_, err = Download(ctx, "org/tiny", h.opts(cache))
	if !errors.Is(err, ErrNotCached) || !strings.Contains(err.Error(), "model.safetensors") {
		t.Errorf("offline with a deleted blob: %v", err)
	}
}

func TestNetworkDown(t *testing.T) {
	isolate(t)
	h := newFakeHub(t)
	h.addRepo(Model, "org/tiny", commitA, modelFiles())
	cache := t.TempDir()
	ctx := context.Background()
	dir, err := Download(ctx, "org/tiny", h.opts(cache))
	if err != nil {
		t.Fatal(err)
	}
	down := h.opts(cache)
	h.hub.Close()
	var notes bytes.Buffer
	down.Progress = &notes
	got, err := Download(ctx, "org/tiny", down)
	if err != nil || got != dir {
		t.Fatalf("network down with a cached snapshot: %s, %v", got, err)
	}
	if !strings.Contains(notes.String(), "unreachable") {
		t.Errorf("no note about using the cache: %q", notes.String())
	}
	_, err = Download(ctx, "org/never", down)
	if !errors.Is(err, ErrNetwork) || !strings.Contains(err.Error(), "cannot reach") {
		t.Errorf("network down, nothing cached: %v", err)
	}
}

func TestTwoReposShareTheCache(t *testing.T) {
	isolate(t)
	h := newFakeHub(t)
	shared := fakeFile{data: bigData(50_000), lfs: true}
	h.addRepo(Model, "org/a", commitA, map[string]fakeFile{"w.safetensors": shared, "config.json": {data: []byte("{}")}})
	h.addRepo(Model, "org/b", commitB, map[string]fakeFile{"w.safetensors": shared})
	h.addRepo(Dataset, "org/a", commitC, map[string]fakeFile{"train.parquet": {data: bigData(2000), lfs: true}})
	cache := t.TempDir()
	t.Setenv("HF_HUB_CACHE", cache)
	t.Setenv("HF_ENDPOINT", h.hub.URL)
	ctx := context.Background()
	da, err := Download(ctx, "org/a", Options{})
	if err != nil {
		t.Fatal(err)
	}
	db, err := Download(ctx, "org/b", Options{})
	if err != nil {
		t.Fatal(err)
	}
	dd, err := Download(ctx, "org/a", Options{RepoType: Dataset})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		da: filepath.Join(cache, "models--org--a", "snapshots", commitA),
		db: filepath.Join(cache, "models--org--b", "snapshots", commitB),
		dd: filepath.Join(cache, "datasets--org--a", "snapshots", commitC),
	}
	for got, w := range want {
		if got != w {
			t.Errorf("snapshot %s, want %s", got, w)
		}
	}
	for _, p := range []string{filepath.Join(da, "w.safetensors"), filepath.Join(db, "w.safetensors")} {
		if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, shared.data) {
			t.Errorf("%s: %v", p, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dd, "train.parquet")); err != nil || len(b) != 2000 {
		t.Errorf("dataset file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cache, ".locks", "models--org--a", shared.etag()+".lock")); err != nil {
		t.Errorf("no lock file where huggingface_hub puts it: %v", err)
	}
}

// TestReusesPythonCache builds a cache by hand exactly as huggingface_hub
// lays it out and checks that it is used without downloading anything.
func TestReusesPythonCache(t *testing.T) {
	isolate(t)
	cache := t.TempDir()
	files := modelFiles()
	repoDir := filepath.Join(cache, "models--Qwen--Tiny")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(repoDir, "blobs"), 0o755))
	must(os.MkdirAll(filepath.Join(repoDir, "refs"), 0o755))
	must(os.WriteFile(filepath.Join(repoDir, "refs", "main"), []byte(commitB), 0o644))
	for name, f := range files {
		must(os.WriteFile(filepath.Join(repoDir, "blobs", f.etag()), f.data, 0o644))
		ptr := filepath.Join(repoDir, "snapshots", commitB, filepath.FromSlash(name))
		must(os.MkdirAll(filepath.Dir(ptr), 0o755))
		must(os.Symlink(strings.Repeat("../", 2+strings.Count(name, "/"))+"blobs/"+f.etag(), ptr))
	}
	ctx := context.Background()

	// Offline: no network at all.
	dir, err := Download(ctx, "Qwen/Tiny", Options{CacheDir: cache, Offline: true})
	if err != nil || dir != filepath.Join(repoDir, "snapshots", commitB) {
		t.Fatalf("offline reuse: %s, %v", dir, err)
	}
	// Online: only the file list is asked for; every file is reused.
	h := newFakeHub(t)
	h.addRepo(Model, "Qwen/Tiny", commitB, files)
	dir2, err := Download(ctx, "Qwen/Tiny", h.opts(cache))
	if err != nil || dir2 != dir {
		t.Fatalf("online reuse: %s, %v", dir2, err)
	}
	if reqs := h.takeRequests(); len(reqs) != 1 {
		t.Errorf("reusing a complete cache made %d requests, want 1 (the file list): %+v", len(reqs), reqs)
	}
	// Resolve takes the repo id and gives the same folder; a folder is returned as is.
	r, err := Resolve(ctx, "Qwen/Tiny", Options{CacheDir: cache, Offline: true})
	if err != nil || r != dir {
		t.Errorf("Resolve(repo) = %s, %v", r, err)
	}
	r, err = Resolve(ctx, dir, Options{})
	if err != nil || r != dir {
		t.Errorf("Resolve(folder) = %s, %v", r, err)
	}
	if _, err := Resolve(ctx, "./no/such/folder", Options{}); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Resolve(missing folder): %v", err)
	}
	// A branch moved on the Hub: the new commit's files come from shared blobs.
	h.addRepo(Model, "Qwen/Tiny", commitC, files)
	dir3, err := Download(ctx, "Qwen/Tiny", h.opts(cache))
	if err != nil || dir3 != filepath.Join(repoDir, "snapshots", commitC) {
		t.Fatalf("moved branch: %s, %v", dir3, err)
	}
	if n := count(h.takeRequests(), "cdn"); n != 0 {
		t.Errorf("blobs already cached were fetched again (%d CDN requests)", n)
	}
	if ref, _ := os.ReadFile(filepath.Join(repoDir, "refs", "main")); string(ref) != commitC {
		t.Errorf("refs/main = %q after the branch moved", ref)
	}
}

func TestDownloadFileBranchRef(t *testing.T) {
	isolate(t)
	h := newFakeHub(t)
	repo := h.addRepo(Model, "org/tiny", commitA, modelFiles())
	repo.refs["refs/pr/1"] = commitA
	cache := t.TempDir()
	o := h.opts(cache)
	o.Revision = "refs/pr/1"
	p, err := DownloadFile(context.Background(), "org/tiny", "sub/dir/vocab 1.txt", o)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "hello\nworld\n" {
		t.Errorf("content %q", b)
	}
	if ref, _ := os.ReadFile(filepath.Join(cache, "models--org--tiny", "refs", "refs", "pr", "1")); string(ref) != commitA {
		t.Errorf("refs/refs/pr/1 = %q", ref)
	}
}

func TestRenamedRepoRelativeRedirect(t *testing.T) {
	isolate(t)
	h := newFakeHub(t)
	repo := h.addRepo(Model, "org/new", commitA, modelFiles())
	repo.token = "hf_t"
	h.renamed["org/old"] = "org/new"
	t.Setenv("HF_TOKEN", "hf_t")
	cache := t.TempDir()
	dir, err := Download(context.Background(), "org/old", h.opts(cache))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(cache, "models--org--old", "snapshots", commitA); dir != want {
		t.Errorf("snapshot %s, want %s (stored under the id asked for, as huggingface_hub does)", dir, want)
	}
	sawOld := false
	for _, r := range h.takeRequests() {
		if r.server == "hub" && r.auth != "Bearer hf_t" {
			t.Errorf("token not kept across a same-origin redirect: %s %s", r.method, r.path)
		}
		sawOld = sawOld || strings.Contains(r.path, "/org/old/")
	}
	if !sawOld {
		t.Error("no request for the old id: the redirect was not exercised")
	}
	if b, err := os.ReadFile(filepath.Join(dir, "model.safetensors")); err != nil || len(b) != 300_000 {
		t.Errorf("model.safetensors: %d bytes, %v", len(b), err)
	}
}

func TestConcurrentDownloadsShareOneFetch(t *testing.T) {
	isolate(t)
	h := newFakeHub(t)
	h.addRepo(Model, "org/tiny", commitA, modelFiles())
	cache := t.TempDir()
	const n = 4
	errs := make(chan error, n)
	dirs := make(chan string, n)
	for range n {
		go func() {
			d, err := Download(context.Background(), "org/tiny", h.opts(cache))
			errs <- err
			dirs <- d
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		<-dirs
	}
	if c := count(h.takeRequests(), "cdn"); c != 1 {
		t.Errorf("%d CDN downloads of the same blob by %d concurrent downloads, want 1", c, n)
	}
	p := filepath.Join(cache, "models--org--tiny", "snapshots", commitA, "model.safetensors")
	if _, err := os.Readlink(p); err != nil {
		t.Errorf("%s is not a symlink after concurrent downloads: %v", p, err)
	}
	files, _, _ := cachedFiles(filepath.Join(cache, "models--org--tiny", "snapshots", commitA))
	if len(files) != 3 {
		t.Errorf("snapshot holds %v, want the 3 files and nothing else", files)
	}
}

func TestContextCancelled(t *testing.T) {
	isolate(t)
	h := newFakeHub(t)
	h.addRepo(Model, "org/tiny", commitA, modelFiles())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Download(ctx, "org/tiny", h.opts(t.TempDir())); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled download: %v", err)
	}
}

// BenchmarkDownload measures a 32 MiB LFS download through the fake Hub and
// CDN (HEAD, redirect, GET, sha256 check, rename, link) into a fresh cache.
func BenchmarkDownload(b *testing.B) {
	for _, k := range []string{"HF_TOKEN", "HF_HUB_OFFLINE", "HF_ENDPOINT", "HF_HUB_CACHE"} {
		b.Setenv(k, "")
	}
	h := &fakeHub{repos: map[string]*fakeRepo{}, cutAfter: map[string]int{}, serve: map[string][]byte{}, renamed: map[string]string{}}
	h.hub = httptest.NewServer(http.HandlerFunc(h.serveHub))
	h.cdn = httptest.NewServer(http.HandlerFunc(h.serveCDN))
	defer h.hub.Close()
	defer h.cdn.Close()
	data := bigData(32 << 20)
	h.addRepo(Model, "org/big", commitA, map[string]fakeFile{"model.safetensors": {data: data, lfs: true}})
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		cache := b.TempDir()
		if _, err := Download(context.Background(), "org/big", h.opts(cache)); err != nil {
			b.Fatal(err)
		}
		h.takeRequests()
	}
}

func TestEmptyFile(t *testing.T) {
	isolate(t)
	h := newFakeHub(t)
	h.addRepo(Model, "org/tiny", commitA, map[string]fakeFile{".gitattributes": {data: nil}, "empty.bin": {data: []byte{}, lfs: true}})
	dir, err := Download(context.Background(), "org/tiny", h.opts(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{".gitattributes", "empty.bin"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Size() != 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestUnsafePaths checks that revisions and listed file paths that would step
// out of the cache folders they are joined under are refused, and that
// ordinary ones pass.
func TestUnsafePaths(t *testing.T) {
	for _, ok := range []string{"main", "refs/pr/1", "v1.0", "0123456789abcdef0123456789abcdef01234567", "a/b.c/d..e"} {
		if err := checkRevision(ok); err != nil {
			t.Errorf("checkRevision(%q): %v", ok, err)
		}
		if err := checkRepoPath(ok); err != nil {
			t.Errorf("checkRepoPath(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "/etc", "../x", "a/../../x", "a//b", "a/./b", "a/", ".", "..", `a\b`, "a\x00b"} {
		if err := checkRevision(bad); err == nil || !strings.Contains(err.Error(), "not a valid branch") {
			t.Errorf("checkRevision(%q) = %v, want a refusal", bad, err)
		}
		if err := checkRepoPath(bad); err == nil || !strings.Contains(err.Error(), "unsafe file path") {
			t.Errorf("checkRepoPath(%q) = %v, want a refusal", bad, err)
		}
	}
}
