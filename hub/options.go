// Package hub downloads model and dataset repositories from the Hugging Face
// Hub into the same on-disk cache that Python's huggingface_hub uses, so that
// either side reuses the other's downloads.
//
// The cache layout (under $HF_HUB_CACHE, by default $HF_HOME/hub, by default
// ~/.cache/huggingface/hub) is, per repository:
//
//	models--ORG--NAME/                  (datasets--ORG--NAME for datasets)
//	  blobs/<etag>                      file contents, named by git sha1 or LFS sha256
//	  refs/<revision>                   the commit a branch or tag pointed to
//	  snapshots/<commit>/<path>         relative symlinks to ../../blobs/<etag>
//
// and a lock file per blob in .locks/models--ORG--NAME/<etag>.lock, the same
// flock(2) lock that Python's filelock takes.
//
// Resolve accepts either a repository id or a local folder, so every command
// that loads a model takes both.
package hub

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Repository types, as the Hub names them.
const (
	Model   = "model"
	Dataset = "dataset"
	Space   = "space"
)

// DefaultEndpoint is the Hub used when neither Options.Endpoint nor $HF_ENDPOINT is set.
const DefaultEndpoint = "https://huggingface.co"

// Options configures a download. The zero value downloads every file of a
// model repository's main branch, configured from the environment as
// huggingface_hub is: HF_TOKEN (or the token file $HF_HOME/token), HF_ENDPOINT,
// HF_HOME, HF_HUB_CACHE and HF_HUB_OFFLINE.
type Options struct {
	// RepoType is Model (default), Dataset or Space.
	RepoType string
	// Revision is a branch, tag or commit hash; default "main".
	Revision string
	// Include keeps only files matching one of these fnmatch-style patterns
	// ("*" also matches "/", a pattern ending in "/" matches a whole folder).
	// Empty keeps all files.
	Include []string
	// Exclude drops files matching one of these patterns.
	Exclude []string
	// Token is the access token sent as "Authorization: Bearer"; default
	// $HF_TOKEN, else the contents of $HF_HOME/token. It is sent only to the
	// endpoint's own origin, never to a CDN a download is redirected to.
	Token string
	// Endpoint is the Hub's base URL; default $HF_ENDPOINT, else DefaultEndpoint.
	Endpoint string
	// CacheDir is the hub cache folder; default $HF_HUB_CACHE, else
	// $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
	// ~/.cache/huggingface/hub.
	CacheDir string
	// Offline resolves from the cache only, without any network access. It is
	// also turned on by HF_HUB_OFFLINE=1 (or TRANSFORMERS_OFFLINE=1).
	Offline bool
	// Progress receives progress bars and notes (such as falling back to the
	// cache when the Hub cannot be reached). Nil turns them off.
	Progress io.Writer
	// Client is the HTTP client to use; default http.DefaultClient's transport.
	// Its redirect policy is replaced: hub follows redirects itself.
	Client *http.Client
}

// settings is Options with every default filled in and checked.
type settings struct {
	Options
	// offlineWhy says what turned offline mode on, for error messages.
	offlineWhy string
	endpoint   *url.URL
	client     *http.Client
}

func truthy(v string) bool {
	switch strings.ToUpper(strings.TrimSpace(v)) {
	case "1", "ON", "YES", "TRUE":
		return true
	}
	return false
}

// HFHome returns the Hugging Face home folder: $HF_HOME, else
// $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface.
func HFHome() string {
	if h := os.Getenv("HF_HOME"); h != "" {
		return expandHome(h)
	}
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
		return filepath.Join(expandHome(x), "huggingface")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "."
	}
	return filepath.Join(home, ".cache", "huggingface")
}

// DefaultCacheDir returns the hub cache folder the environment selects:
// $HF_HUB_CACHE (or the older $HUGGINGFACE_HUB_CACHE), else HFHome()/hub.
func DefaultCacheDir() string {
	if c := os.Getenv("HF_HUB_CACHE"); c != "" {
		return expandHome(c)
	}
	if c := os.Getenv("HUGGINGFACE_HUB_CACHE"); c != "" {
		return expandHome(c)
	}
	return filepath.Join(HFHome(), "hub")
}

func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[1:])
		}
	}
	return p
}

func defaultToken() string {
	if t := strings.TrimSpace(os.Getenv("HF_TOKEN")); t != "" {
		return t
	}
	if t := strings.TrimSpace(os.Getenv("HUGGING_FACE_HUB_TOKEN")); t != "" {
		return t
	}
	path := os.Getenv("HF_TOKEN_PATH")
	if path == "" {
		path = filepath.Join(HFHome(), "token")
	}
	if b, err := os.ReadFile(expandHome(path)); err == nil {
		return strings.TrimSpace(string(b))
	}
	return ""
}

func (o Options) resolve() (*settings, error) {
	s := &settings{Options: o}
	switch s.RepoType {
	case "":
		s.RepoType = Model
	case Model, Dataset, Space:
	default:
		return nil, fmt.Errorf("hub: unknown repository type %q (use %q, %q or %q)", s.RepoType, Model, Dataset, Space)
	}
	if s.Revision == "" {
		s.Revision = "main"
	}
	if err := checkRevision(s.Revision); err != nil {
		return nil, err
	}
	if s.Token == "" {
		s.Token = defaultToken()
	}
	if s.Endpoint == "" {
		s.Endpoint = os.Getenv("HF_ENDPOINT")
	}
	if s.Endpoint == "" {
		s.Endpoint = DefaultEndpoint
	}
	s.Endpoint = strings.TrimRight(s.Endpoint, "/")
	u, err := url.Parse(s.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("hub: endpoint %q is not an http(s) URL (check HF_ENDPOINT)", s.Endpoint)
	}
	s.endpoint = u
	if s.CacheDir == "" {
		s.CacheDir = DefaultCacheDir()
	}
	switch {
	case s.Offline:
		s.offlineWhy = "offline mode is on (--offline)"
	case truthy(os.Getenv("HF_HUB_OFFLINE")):
		s.Offline, s.offlineWhy = true, "offline mode is on (HF_HUB_OFFLINE="+os.Getenv("HF_HUB_OFFLINE")+")"
	case truthy(os.Getenv("TRANSFORMERS_OFFLINE")):
		s.Offline, s.offlineWhy = true, "offline mode is on (TRANSFORMERS_OFFLINE="+os.Getenv("TRANSFORMERS_OFFLINE")+")"
	}
	var base http.Client
	if s.Client != nil {
		base = *s.Client
	}
	base.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	s.client = &base
	return s, nil
}

var (
	repoIDPattern  = regexp.MustCompile(`^([A-Za-z0-9_.\-]+/)?[A-Za-z0-9_.\-]+$`)
	commitPattern  = regexp.MustCompile(`^[0-9a-f]{40}$`)
	sha256Pattern  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	safeEtagRegexp = regexp.MustCompile(`^[A-Za-z0-9_.\-]+$`)
)

// CheckRepoID reports whether id is a valid Hub repository id ("name" or
// "namespace/name", as huggingface_hub validates it).
func CheckRepoID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("hub: empty repository id (want NAMESPACE/NAME, e.g. Qwen/Qwen2-VL-2B-Instruct)")
	case len(id) > 96:
		return fmt.Errorf("hub: repository id %q is longer than 96 characters", id)
	case !repoIDPattern.MatchString(id),
		strings.Contains(id, "--"), strings.Contains(id, ".."),
		strings.HasPrefix(id, ".") || strings.HasPrefix(id, "-") || strings.HasSuffix(id, ".git"),
		strings.Contains(id, "/.") || strings.Contains(id, "/-"):
		return fmt.Errorf("hub: %q is not a valid repository id (want NAMESPACE/NAME with letters, digits, '-', '_' and '.', no '--' or '..'); if it is a local folder, it does not exist", id)
	}
	return nil
}

// checkRevision rejects revisions that would escape the refs folder.
func checkRevision(rev string) error {
	if !safeRelPath(rev) {
		return fmt.Errorf("hub: revision %q is not a valid branch, tag or commit", rev)
	}
	return nil
}

// checkRepoPath rejects file paths from the server that would escape the snapshot folder.
func checkRepoPath(p string) error {
	if !safeRelPath(p) {
		return fmt.Errorf("hub: unsafe file path %q in repository listing", p)
	}
	return nil
}

// safeRelPath reports whether p is a slash-separated relative path of real
// names (no empty, "." or ".." part, no backslash or NUL), so that joined
// under a cache folder it stays inside that folder.
func safeRelPath(p string) bool {
	if strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\\\x00") {
		return false
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." {
			return false
		}
	}
	return true
}

// RepoFolderName returns the cache folder name of a repository, as
// huggingface_hub names it: "models--Qwen--Qwen2-VL-2B-Instruct".
func RepoFolderName(repoType, repoID string) string {
	if repoType == "" {
		repoType = Model
	}
	return strings.Join(append([]string{repoType + "s"}, strings.Split(repoID, "/")...), "--")
}
