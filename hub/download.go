package hub

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Resolve returns a local folder holding repoOrDir: the folder itself when
// repoOrDir is an existing directory, otherwise the snapshot folder of the Hub
// repository with that id, downloaded (or found in the cache) as Download does.
func Resolve(ctx context.Context, repoOrDir string, opts Options) (string, error) {
	p := expandHome(repoOrDir)
	if st, err := os.Stat(p); err == nil {
		if !st.IsDir() {
			return "", fmt.Errorf("hub: %s is a file; give a model folder or a repository id", repoOrDir)
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", fmt.Errorf("hub: %s: %w", repoOrDir, err)
		}
		return abs, nil
	}
	if looksLikePath(repoOrDir) {
		return "", fmt.Errorf("hub: local folder %s does not exist (a Hub repository id looks like ORG/NAME)", repoOrDir)
	}
	return Download(ctx, repoOrDir, opts)
}

func looksLikePath(s string) bool {
	return strings.HasPrefix(s, "/") || strings.HasPrefix(s, "./") || strings.HasPrefix(s, "../") ||
		strings.HasPrefix(s, "~") || s == "." || s == ".." || strings.Count(s, "/") > 1 ||
		strings.Contains(s, string(filepath.Separator)) && filepath.Separator != '/'
}

// revisionInfo is the part of GET /api/{type}s/{repo}/revision/{rev} that hub uses.
type revisionInfo struct {
	SHA      string `json:"sha"`
	Siblings []struct {
		RFilename string `json:"rfilename"`
	} `json:"siblings"`
}

// Download fetches the files of a repository at opts.Revision (all of them,
// or those opts.Include/Exclude select) into the cache and returns the
// snapshot folder, CacheDir/models--ORG--NAME/snapshots/<commit>. Files
// already in the cache are not fetched again. In offline mode, or when the
// Hub cannot be reached and the cache holds the revision, the cached snapshot
// is returned; in offline mode an error lists what is missing from it.
func Download(ctx context.Context, repoID string, opts Options) (string, error) {
	s, err := opts.resolve()
	if err != nil {
		return "", err
	}
	if err := CheckRepoID(repoID); err != nil {
		return "", err
	}
	include, err := compilePatterns(s.Include)
	if err != nil {
		return "", err
	}
	exclude, err := compilePatterns(s.Exclude)
	if err != nil {
		return "", err
	}
	rc := s.repoCache(repoID)
	if s.Offline {
		return s.fromCache(repoID, rc, include, exclude, nil)
	}
	info, err := s.revisionInfo(ctx, repoID)
	if err != nil {
		if errors.Is(err, ErrNetwork) {
			if dir, cerr := s.fromCache(repoID, rc, include, exclude, err); cerr == nil {
				s.notef("hub: the Hub is unreachable; using the cached snapshot %s\n", dir)
				return dir, nil
			}
		}
		return "", err
	}
	all := make([]string, 0, len(info.Siblings))
	for _, sib := range info.Siblings {
		all = append(all, sib.RFilename)
	}
	files, unmatched := filterFiles(all, include, exclude)
	if len(unmatched) > 0 {
		return "", newErr(ErrNotFound, nil, "no file of %s at revision %q matches %s; it has %s",
			what{repoType: s.RepoType, repoID: repoID}.repo(), s.Revision, quoteList(unmatched), sample(all, 12))
	}
	if err := rc.writeRef(s.Revision, info.SHA); err != nil {
		return "", err
	}
	for _, f := range files {
		if _, err := s.fetchFile(ctx, repoID, rc, info.SHA, f); err != nil {
			return "", err
		}
	}
	dir := rc.snapshotDir(info.SHA)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("hub: creating %s: %w", dir, err)
	}
	return dir, nil
}

// DownloadFile fetches one file of a repository at opts.Revision into the
// cache and returns its path in the snapshot folder (a symlink into blobs).
// opts.Include and Exclude are ignored.
func DownloadFile(ctx context.Context, repoID, file string, opts Options) (string, error) {
	s, err := opts.resolve()
	if err != nil {
		return "", err
	}
	if err := CheckRepoID(repoID); err != nil {
		return "", err
	}
	if err := checkRepoPath(file); err != nil {
		return "", err
	}
	rc := s.repoCache(repoID)
	if s.Offline {
		return s.fileFromCache(repoID, rc, file, nil)
	}
	p, err := s.fetchFile(ctx, repoID, rc, s.Revision, file)
	if err != nil && errors.Is(err, ErrNetwork) {
		if cp, cerr := s.fileFromCache(repoID, rc, file, err); cerr == nil {
			s.notef("hub: the Hub is unreachable; using the cached %s\n", cp)
			return cp, nil
		}
	}
	return p, err
}

func (s *settings) notef(format string, args ...any) {
	if s.Progress != nil {
		fmt.Fprintf(s.Progress, format, args...)
	}
}

func quoteList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = strconv.Quote(x)
	}
	return strings.Join(q, ", ")
}

func sample(xs []string, n int) string {
	if len(xs) == 0 {
		return "no files"
	}
	if len(xs) <= n {
		return strings.Join(xs, ", ")
	}
	return fmt.Sprintf("%s, … (%d files)", strings.Join(xs[:n], ", "), len(xs))
}

func (s *settings) revisionInfo(ctx context.Context, repoID string) (*revisionInfo, error) {
	w := what{repoType: s.RepoType, repoID: repoID, revision: s.Revision}
	resp, err := s.do(ctx, http.MethodGet, s.revisionURL(repoID, s.Revision), http.Header{"Accept": {"application/json"}}, true)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, s.statusError(resp, w)
	}
	var info revisionInfo
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&info); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, newErr(ErrProtocol, err, "reading the file list of %s at revision %q", w.repo(), s.Revision)
	}
	if !commitPattern.MatchString(info.SHA) {
		return nil, newErr(ErrProtocol, nil, "the Hub gave no commit hash for %s at revision %q (got %q)", w.repo(), s.Revision, info.SHA)
	}
	for _, sib := range info.Siblings {
		if err := checkRepoPath(sib.RFilename); err != nil {
			return nil, err
		}
	}
	return &info, nil
}

// fileMeta is what a HEAD on resolve/{rev}/{path} tells about a file.
type fileMeta struct {
	commit, etag, location string
	size                   int64
}

func normalizeEtag(e string) string {
	e = strings.TrimSpace(e)
	e = strings.TrimPrefix(e, "W/")
	return strings.Trim(e, `"`)
}

func (s *settings) head(ctx context.Context, repoID, revision, file string) (*fileMeta, error) {
	w := what{repoType: s.RepoType, repoID: repoID, revision: revision, file: file}
	u := s.resolveURL(repoID, revision, file)
	resp, err := s.do(ctx, http.MethodHead, u, http.Header{"Accept-Encoding": {"identity"}}, false)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	redirect := resp.StatusCode >= 300 && resp.StatusCode <= 399
	if resp.StatusCode != http.StatusOK && !redirect {
		return nil, s.statusError(resp, w)
	}
	m := &fileMeta{
		commit:   resp.Header.Get("X-Repo-Commit"),
		etag:     normalizeEtag(resp.Header.Get("X-Linked-Etag")),
		location: resp.Request.URL.String(),
	}
	if m.etag == "" {
		m.etag = normalizeEtag(resp.Header.Get("ETag"))
	}
	if loc := resp.Header.Get("Location"); redirect && loc != "" {
		if l, err := resp.Request.URL.Parse(loc); err == nil {
			m.location = l.String()
		}
	}
	sizeHdr := resp.Header.Get("X-Linked-Size")
	if sizeHdr == "" && !redirect {
		sizeHdr = resp.Header.Get("Content-Length")
	}
	size, err := strconv.ParseInt(sizeHdr, 10, 64)
	switch {
	case !commitPattern.MatchString(m.commit):
		return nil, newErr(ErrProtocol, nil, "the Hub gave no commit (X-Repo-Commit) for %q of %s; is HF_ENDPOINT a Hub?", file, w.repo())
	case m.etag == "" || !safeEtagRegexp.MatchString(m.etag) || m.etag == "." || m.etag == "..":
		return nil, newErr(ErrProtocol, nil, "the Hub gave no usable ETag for %q of %s (got %q)", file, w.repo(), m.etag)
	case err != nil || size < 0:
		return nil, newErr(ErrProtocol, nil, "the Hub gave no size for %q of %s (X-Linked-Size/Content-Length %q)", file, w.repo(), sizeHdr)
	}
	m.size = size
	return m, nil
}

// fetchFile makes CacheDir/.../snapshots/<commit>/<file> exist and returns its path.
func (s *settings) fetchFile(ctx context.Context, repoID string, rc repoCache, revision, file string) (string, error) {
	if commitPattern.MatchString(revision) {
		if p := rc.pointerPath(revision, file); exists(p) {
			return p, nil
		}
	}
	m, err := s.head(ctx, repoID, revision, file)
	if err != nil {
		return "", err
	}
	if err := rc.writeRef(revision, m.commit); err != nil {
		return "", err
	}
	if p := rc.pointerPath(m.commit, file); exists(p) {
		return p, nil
	}
	blob := rc.blobPath(m.etag)
	if !exists(blob) {
		unlock, err := lockFile(ctx, s.lockPath(repoID, m.etag))
		if err != nil {
			return "", err
		}
		if !exists(blob) {
			err = s.fetchBlob(ctx, m, blob, file)
		}
		unlock()
		if err != nil {
			return "", err
		}
	}
	return rc.link(m.commit, file, m.etag)
}

// verifier checks a download against its etag: the sha256 for LFS files
// (64 hex digits), the git blob sha1 for regular files (40 hex digits).
type verifier struct {
	h    hash.Hash
	algo string
	want string
	size int64
}

func newVerifier(etag string, size int64) *verifier {
	v := &verifier{want: etag, size: size}
	switch {
	case sha256Pattern.MatchString(etag):
		v.algo = "sha256"
	case commitPattern.MatchString(etag):
		v.algo = "git sha1"
	default:
		return nil
	}
	v.reset()
	return v
}

func (v *verifier) reset() {
	if v.algo == "sha256" {
		v.h = sha256.New()
		return
	}
	v.h = sha1.New()
	fmt.Fprintf(v.h, "blob %d\x00", v.size)
}

func (v *verifier) Write(p []byte) (int, error) {
	if v == nil {
		return len(p), nil
	}
	return v.h.Write(p)
}

func (v *verifier) check() (got string, ok bool) {
	if v == nil {
		return "", true
	}
	got = hex.EncodeToString(v.h.Sum(nil))
	return got, got == v.want
}

// maxStalls is how many attempts in a row may fail without receiving a byte
// before a download gives up.
const maxStalls = 5

// fetchBlob downloads m into blob via blob+".incomplete", resuming what an
// earlier attempt left there, and renames it into place only once its size
// and checksum are right. The caller holds the blob's lock.
func (s *settings) fetchBlob(ctx context.Context, m *fileMeta, blob, file string) (err error) {
	if err := os.MkdirAll(filepath.Dir(blob), 0o755); err != nil {
		return fmt.Errorf("hub: creating %s: %w", filepath.Dir(blob), err)
	}
	inc := blob + ".incomplete"
	f, err := os.OpenFile(inc, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("hub: opening %s: %w", inc, err)
	}
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("hub: reading %s: %w", inc, err)
	}
	if have > m.size {
		if err := truncate(f); err != nil {
			return err
		}
		have = 0
	}
	v := newVerifier(m.etag, m.size)
	if v != nil && have > 0 {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("hub: reading %s: %w", inc, err)
		}
		if _, err := io.CopyN(v, f, have); err != nil {
			return fmt.Errorf("hub: reading %s: %w", inc, err)
		}
	}
	bar := s.newBar(file, m.size, have)
	stalls := 0
	for have < m.size {
		var n int64
		var retry bool
		var gerr error
		have, n, retry, gerr = s.getRange(ctx, m, f, v, have, bar)
		if gerr == nil {
			continue
		}
		if !retry || ctx.Err() != nil {
			if errors.Is(gerr, ErrCorrupt) {
				f.Close()
				f = nil
				os.Remove(inc)
			}
			return gerr
		}
		if n > 0 {
			stalls = 0
			continue
		}
		stalls++
		if stalls >= maxStalls {
			return newErr(ErrNetwork, gerr, "downloading %q failed %d times in a row (%d of %d bytes kept in %s; run again to resume)", file, stalls, have, m.size, inc)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(stalls) * 200 * time.Millisecond):
		}
	}
	if bar != nil {
		_ = bar.Finish()
	}
	if got, ok := v.check(); !ok {
		f.Close()
		f = nil
		os.Remove(inc)
		return newErr(ErrCorrupt, nil, "%q does not match its checksum (%s %s expected, %s received); the bad download was deleted, run again", file, v.algo, v.want, got)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("hub: writing %s: %w", inc, err)
	}
	if err := f.Close(); err != nil {
		f = nil
		return fmt.Errorf("hub: writing %s: %w", inc, err)
	}
	f = nil
	if err := os.Rename(inc, blob); err != nil {
		return fmt.Errorf("hub: moving %s into the cache: %w", file, err)
	}
	return nil
}

func truncate(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("hub: truncating %s: %w", f.Name(), err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("hub: truncating %s: %w", f.Name(), err)
	}
	return nil
}

// getRange fetches bytes have.. of m into f (positioned at have) and
// returns how many bytes f now holds and how many this attempt received (a
// server that ignores Range restarts f from zero). retry says whether a
// failure is worth another attempt.
func (s *settings) getRange(ctx context.Context, m *fileMeta, f *os.File, v *verifier, have int64, bar *progressbar.ProgressBar) (total, n int64, retry bool, err error) {
	hdr := http.Header{"Accept-Encoding": {"identity"}}
	if have > 0 {
		hdr.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	resp, err := s.do(ctx, http.MethodGet, m.location, hdr, true)
	if err != nil {
		return have, 0, errors.Is(err, ErrNetwork), err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusPartialContent:
		start, ok := contentRangeStart(resp.Header.Get("Content-Range"))
		if !ok || start != have {
			return have, 0, false, newErr(ErrProtocol, nil, "asked %s for bytes %d- but got %q", redactURL(m.location), have, resp.Header.Get("Content-Range"))
		}
	case resp.StatusCode == http.StatusOK:
		if have > 0 {
			if err := truncate(f); err != nil {
				return have, 0, false, err
			}
			if v != nil {
				v.reset()
			}
			have = 0
			if bar != nil {
				_ = bar.Set64(0)
			}
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		return have, 0, false, newErr(ErrCorrupt, nil, "the server has fewer bytes than the %d announced for %s", m.size, redactURL(m.location))
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests:
		return have, 0, true, newErr(ErrNetwork, nil, "%s answered HTTP %d", redactURL(m.location), resp.StatusCode)
	default:
		return have, 0, false, newErr(ErrProtocol, nil, "downloading %s: HTTP %d", redactURL(m.location), resp.StatusCode)
	}
	var dst io.Writer = f
	if v != nil {
		dst = io.MultiWriter(f, v)
	}
	if bar != nil {
		dst = io.MultiWriter(dst, bar)
	}
	n, cerr := io.Copy(dst, io.LimitReader(resp.Body, m.size-have+1))
	if have+n > m.size {
		return have + n, n, false, newErr(ErrCorrupt, nil, "the server sent more than the %d bytes announced for this file (%s); the bad download was deleted", m.size, redactURL(m.location))
	}
	if cerr != nil {
		var pe *os.PathError
		if errors.As(cerr, &pe) {
			return have + n, n, false, fmt.Errorf("hub: writing %s: %w", f.Name(), cerr)
		}
		return have + n, n, true, newErr(ErrNetwork, cerr, "connection lost after %d of %d bytes", have+n, m.size)
	}
	if have+n < m.size {
		return have + n, n, true, newErr(ErrNetwork, nil, "connection closed after %d of %d bytes", have+n, m.size)
	}
	return have + n, n, false, nil
}

func contentRangeStart(h string) (int64, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(h), "bytes ")
	if !ok {
		return 0, false
	}
	first, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(first, 10, 64)
	return v, err == nil
}

func (s *settings) newBar(file string, size, have int64) *progressbar.ProgressBar {
	if s.Progress == nil {
		return nil
	}
	name := file
	if len(name) > 40 {
		name = "…" + name[len(name)-39:]
	}
	bar := progressbar.NewOptions64(size,
		progressbar.OptionSetWriter(s.Progress),
		progressbar.OptionSetDescription(name),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(s.Progress) }),
	)
	if have > 0 {
		_ = bar.Set64(have)
	}
	return bar
}

// downloadCommand is the `mmft download` line that fetches repoID at s.Revision.
func (s *settings) downloadCommand(repoID string) string {
	cmd := "mmft download"
	if s.RepoType == Dataset {
		cmd += " --dataset"
	}
	if s.Revision != "" && s.Revision != "main" {
		cmd += " --revision " + s.Revision
	}
	return cmd + " " + repoID
}

// fromCache returns the cached snapshot of s.Revision, or an error listing
// what the cache lacks. netErr, when set, is why the Hub was not asked.
func (s *settings) fromCache(repoID string, rc repoCache, include, exclude []pattern, netErr error) (string, error) {
	w := what{repoType: s.RepoType, repoID: repoID, revision: s.Revision}
	why, fix := s.offlineWhy, "download it first with offline mode off, e.g. `"+s.downloadCommand(repoID)+"`"
	if netErr != nil {
		why, fix = "the Hub cannot be reached", "connect to the network or set HF_ENDPOINT to a reachable mirror"
	}
	commit, ok := rc.commitFor(s.Revision)
	if !ok {
		cached := rc.cachedRevisions()
		have := "nothing of it is cached"
		if len(cached) > 0 {
			have = "cached revisions: " + strings.Join(cached, ", ")
		}
		return "", newErr(ErrNotCached, netErr, "%s and revision %q of %s is not in the cache %s (%s); %s", why, s.Revision, w.repo(), s.CacheDir, have, fix)
	}
	dir := rc.snapshotDir(commit)
	files, broken, err := cachedFiles(dir)
	if err != nil {
		return "", newErr(ErrNotCached, netErr, "%s and the snapshot %s of %s is not in the cache; %s", why, commit, w.repo(), fix)
	}
	var missing []string
	_, unmatched := filterFiles(files, include, exclude)
	for _, u := range unmatched {
		missing = append(missing, strconv.Quote(u)+" (no cached file matches)")
	}
	brokenKept, _ := filterFiles(broken, include, exclude)
	for _, b := range brokenKept {
		missing = append(missing, strconv.Quote(b)+" (its blob is gone)")
	}
	if len(files) == 0 && len(include) == 0 {
		missing = append(missing, "every file (the snapshot folder is empty)")
	}
	if len(missing) > 0 {
		return "", newErr(ErrNotCached, netErr, "%s and the cached snapshot %s of %s at revision %q lacks: %s; %s", why, dir, w.repo(), s.Revision, strings.Join(missing, ", "), fix)
	}
	return dir, nil
}

func (s *settings) fileFromCache(repoID string, rc repoCache, file string, netErr error) (string, error) {
	w := what{repoType: s.RepoType, repoID: repoID, revision: s.Revision}
	why, fix := s.offlineWhy, "download it first with offline mode off, e.g. `"+s.downloadCommand(repoID)+"`"
	if netErr != nil {
		why, fix = "the Hub cannot be reached", "connect to the network or set HF_ENDPOINT to a reachable mirror"
	}
	commit, ok := rc.commitFor(s.Revision)
	if !ok {
		return "", newErr(ErrNotCached, netErr, "%s and revision %q of %s is not in the cache %s; %s", why, s.Revision, w.repo(), s.CacheDir, fix)
	}
	p := rc.pointerPath(commit, file)
	if !exists(p) {
		return "", newErr(ErrNotCached, netErr, "%s and %q of %s at revision %q (commit %s) is not in the cache %s; %s", why, file, w.repo(), s.Revision, commit, s.CacheDir, fix)
	}
	return p, nil
}
