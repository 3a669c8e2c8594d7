package hub

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeHub is an in-process Hugging Face Hub: the revision API, resolve URLs
// answering HEAD and GET (regular files directly with their git sha1 as ETag,
// LFS files with a 302 to a separate CDN server), Range requests, access
// control and error codes, plus hooks to break downloads.
type fakeHub struct {
	t   *testing.T
	hub *httptest.Server
	cdn *httptest.Server

	mu       sync.Mutex
	repos    map[string]*fakeRepo // key "model:org/name"
	requests []fakeRequest
	// cutAfter cuts the connection after this many bytes on the next CDN GET of a blob (once).
	cutAfter map[string]int
	// serve replaces the bytes the CDN serves for a blob (to simulate corruption).
	serve map[string][]byte
	// ignoreRange makes the CDN answer 200 with the whole file to Range requests.
	ignoreRange bool
	// renamed maps an old repository id to its new one: requests for the old
	// id get a relative 307 redirect, as the Hub answers for renamed repos.
	renamed map[string]string
}

type fakeRepo struct {
	typ, id string
	token   string            // when set, requests need "Bearer token"
	gated   bool              // when set, a missing token gets 403 GatedRepo
	refs    map[string]string // branch -> commit
	commits map[string]map[string]fakeFile
}

type fakeFile struct {
	data []byte
	lfs  bool
}

type fakeRequest struct {
	server, method, path, auth, rng string
}

func gitSHA1(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func (f fakeFile) etag() string {
	if f.lfs {
		return sha256hex(f.data)
	}
	return gitSHA1(f.data)
}

func newFakeHub(t *testing.T) *fakeHub {
	h := &fakeHub{t: t, repos: map[string]*fakeRepo{}, cutAfter: map[string]int{}, serve: map[string][]byte{}, renamed: map[string]string{}}
	h.hub = httptest.NewServer(http.HandlerFunc(h.serveHub))
	h.cdn = httptest.NewServer(http.HandlerFunc(h.serveCDN))
	t.Cleanup(h.hub.Close)
	t.Cleanup(h.cdn.Close)
	return h
}

// addRepo adds a repository whose "main" branch is one commit holding files.
func (h *fakeHub) addRepo(typ, id, commit string, files map[string]fakeFile) *fakeRepo {
	r := &fakeRepo{typ: typ, id: id, refs: map[string]string{"main": commit}, commits: map[string]map[string]fakeFile{commit: files}}
	h.mu.Lock()
	h.repos[typ+":"+id] = r
	h.mu.Unlock()
	return r
}

func (h *fakeHub) log(server string, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.requests = append(h.requests, fakeRequest{server, r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Range")})
}

func (h *fakeHub) takeRequests() []fakeRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.requests
	h.requests = nil
	return out
}

func fail(w http.ResponseWriter, status int, code, msg string) {
	if code != "" {
		w.Header().Set("X-Error-Code", code)
	}
	w.Header().Set("X-Error-Message", msg)
	http.Error(w, msg, status)
}

// lookup finds the repository of a request and checks access.
func (h *fakeHub) lookup(w http.ResponseWriter, r *http.Request, typ, id string) *fakeRepo {
	h.mu.Lock()
	repo := h.repos[typ+":"+id]
	h.mu.Unlock()
	if repo == nil {
		fail(w, http.StatusNotFound, "RepoNotFound", "Repository not found")
		return nil
	}
	if repo.token != "" && r.Header.Get("Authorization") != "Bearer "+repo.token {
		if repo.gated {
			fail(w, http.StatusForbidden, "GatedRepo", "Access to model "+id+" is restricted.")
		} else {
			fail(w, http.StatusUnauthorized, "RepoNotFound", "Invalid username or password.")
		}
		return nil
	}
	return repo
}

func (repo *fakeRepo) commitOf(rev string) (string, map[string]fakeFile) {
	if c, ok := repo.refs[rev]; ok {
		return c, repo.commits[c]
	}
	if files, ok := repo.commits[rev]; ok {
		return rev, files
	}
	return "", nil
}

func (h *fakeHub) serveHub(w http.ResponseWriter, r *http.Request) {
	h.log("hub", r)
	p := r.URL.EscapedPath()
	h.mu.Lock()
	for old, repl := range h.renamed {
		if strings.Contains(p, "/"+old+"/") {
			h.mu.Unlock()
			w.Header().Set("Location", strings.Replace(p, "/"+old+"/", "/"+repl+"/", 1))
			w.WriteHeader(http.StatusTemporaryRedirect)
			return
		}
	}
	h.mu.Unlock()
	if rest, ok := strings.CutPrefix(p, "/api/"); ok {
		// /api/{models|datasets}/{org}/{name}/revision/{rev}
		parts := strings.Split(rest, "/")
		if len(parts) != 5 || parts[3] != "revision" || r.Method != http.MethodGet {
			fail(w, http.StatusNotFound, "", "no such API route "+p)
			return
		}
		typ := strings.TrimSuffix(parts[0], "s")
		repo := h.lookup(w, r, typ, parts[1]+"/"+parts[2])
		if repo == nil {
			return
		}
		rev, err := url.PathUnescape(parts[4])
		if err != nil {
			fail(w, http.StatusBadRequest, "", "bad revision")
			return
		}
		commit, files := repo.commitOf(rev)
		if files == nil {
			fail(w, http.StatusNotFound, "RevisionNotFound", "Invalid rev id: "+rev)
			return
		}
		names := make([]string, 0, len(files))
		for n := range files {
			names = append(names, n)
		}
		sort.Strings(names)
		sib := make([]map[string]string, len(names))
		for i, n := range names {
			sib[i] = map[string]string{"rfilename": n}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"id": repo.id, "sha": commit, "siblings": sib})
		return
	}
	// /{org}/{name}/resolve/{rev}/{path} or /datasets/{org}/{name}/resolve/...
	typ := Model
	if rest, ok := strings.CutPrefix(p, "/datasets/"); ok {
		typ, p = Dataset, "/"+rest
	}
	parts := strings.SplitN(strings.TrimPrefix(p, "/"), "/", 5)
	if len(parts) != 5 || parts[2] != "resolve" {
		fail(w, http.StatusNotFound, "", "no such route "+p)
		return
	}
	repo := h.lookup(w, r, typ, parts[0]+"/"+parts[1])
	if repo == nil {
		return
	}
	rev, _ := url.PathUnescape(parts[3])
	file, _ := url.PathUnescape(parts[4])
	commit, files := repo.commitOf(rev)
	if files == nil {
		fail(w, http.StatusNotFound, "RevisionNotFound", "Invalid rev id: "+rev)
		return
	}
	f, ok := files[file]
	if !ok {
		fail(w, http.StatusNotFound, "EntryNotFound", file+" does not exist on "+rev)
		return
	}
	w.Header().Set("X-Repo-Commit", commit)
	if f.lfs {
		w.Header().Set("X-Linked-Etag", `"`+f.etag()+`"`)
		w.Header().Set("X-Linked-Size", strconv.Itoa(len(f.data)))
		w.Header().Set("ETag", `"`+gitSHA1([]byte("pointer "+file))+`"`)
		w.Header().Set("Location", h.cdn.URL+"/blobs/"+f.etag()+"?X-Amz-Signature=secret")
		w.WriteHeader(http.StatusFound)
		return
	}
	w.Header().Set("ETag", `"`+f.etag()+`"`)
	serveBytes(w, r, f.data)
}

// serveBytes answers a GET or HEAD with data, honouring "Range: bytes=N-".
func serveBytes(w http.ResponseWriter, r *http.Request, data []byte) {
	start := 0
	if rng := r.Header.Get("Range"); rng != "" {
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rng, "bytes="), "-"))
		if err != nil || n < 0 {
			http.Error(w, "bad range", http.StatusBadRequest)
			return
		}
		if n >= len(data) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", len(data)))
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		start = n
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", n, len(data)-1, len(data)))
		w.Header().Set("Content-Length", strconv.Itoa(len(data)-n))
		w.WriteHeader(http.StatusPartialContent)
	} else {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.WriteHeader(http.StatusOK)
	}
	if r.Method != http.MethodHead {
		w.Write(data[start:])
	}
}

func (h *fakeHub) serveCDN(w http.ResponseWriter, r *http.Request) {
	h.log("cdn", r)
	etag, ok := strings.CutPrefix(r.URL.Path, "/blobs/")
	if !ok || r.URL.Query().Get("X-Amz-Signature") != "secret" {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	h.mu.Lock()
	var data []byte
	for _, repo := range h.repos {
		for _, files := range repo.commits {
			for _, f := range files {
				if f.lfs && f.etag() == etag {
					data = f.data
				}
			}
		}
	}
	if d, ok := h.serve[etag]; ok {
		data = d
	}
	cut, hasCut := h.cutAfter[etag]
	delete(h.cutAfter, etag)
	ignoreRange := h.ignoreRange
	h.mu.Unlock()
	if data == nil {
		http.Error(w, "no such blob", http.StatusNotFound)
		return
	}
	if ignoreRange {
		r.Header.Del("Range")
	}
	if hasCut {
		start := 0
		if rng := r.Header.Get("Range"); rng != "" {
			start, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rng, "bytes="), "-"))
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(data)-1, len(data)))
			w.Header().Set("Content-Length", strconv.Itoa(len(data)-start))
			w.WriteHeader(http.StatusPartialContent)
		} else {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.WriteHeader(http.StatusOK)
		}
		w.Write(data[start : start+cut])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // cut the connection mid-file
	}
	serveBytes(w, r, data)
}

// etagRewriter announces the etag `to` wherever the Hub would announce `from`,
// so that the bytes served no longer match the announced checksum.
type etagRewriter struct {
	next     http.Handler
	from, to string
}

func (e etagRewriter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.next.ServeHTTP(rewriteWriter{w, e}, r)
}

type rewriteWriter struct {
	http.ResponseWriter
	e etagRewriter
}

func (w rewriteWriter) WriteHeader(code int) {
	h := w.Header()
	if h.Get("ETag") == `"`+w.e.from+`"` {
		h.Set("ETag", `"`+w.e.to+`"`)
	}
	w.ResponseWriter.WriteHeader(code)
}
