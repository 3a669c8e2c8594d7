package hub

import (
	"crypto/rand"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mmft-go/mmft/internal/atomicfile"
)

// repoCache is one repository's folder in the hub cache.
type repoCache struct {
	dir string // CacheDir/models--ORG--NAME
}

func (s *settings) repoCache(repoID string) repoCache {
	return repoCache{dir: filepath.Join(s.CacheDir, RepoFolderName(s.RepoType, repoID))}
}

func (c repoCache) blobPath(etag string) string { return filepath.Join(c.dir, "blobs", etag) }
func (c repoCache) snapshotDir(commit string) string {
	return filepath.Join(c.dir, "snapshots", commit)
}
func (c repoCache) pointerPath(commit, file string) string {
	return filepath.Join(c.snapshotDir(commit), filepath.FromSlash(file))
}
func (c repoCache) refPath(revision string) string {
	return filepath.Join(c.dir, "refs", filepath.FromSlash(revision))
}

// lockPath is where huggingface_hub locks a blob: CacheDir/.locks/<repo folder>/<etag>.lock.
func (s *settings) lockPath(repoID, etag string) string {
	return filepath.Join(s.CacheDir, ".locks", RepoFolderName(s.RepoType, repoID), etag+".lock")
}

// commitFor returns the commit a revision names in the cache: the revision
// itself when it is a commit hash, else the contents of refs/<revision>.
func (c repoCache) commitFor(revision string) (string, bool) {
	if commitPattern.MatchString(revision) {
		return revision, true
	}
	b, err := os.ReadFile(c.refPath(revision))
	if err != nil {
		return "", false
	}
	commit := strings.TrimSpace(string(b))
	return commit, commitPattern.MatchString(commit)
}

// writeRef records that revision points at commit, atomically; nothing is
// written when revision is the commit itself or the ref already says so.
func (c repoCache) writeRef(revision, commit string) error {
	if revision == commit {
		return nil
	}
	p := c.refPath(revision)
	if b, err := os.ReadFile(p); err == nil && string(b) == commit {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("hub: recording revision %q: %w", revision, err)
	}
	if err := atomicfile.WriteBytes(p, []byte(commit)); err != nil {
		return fmt.Errorf("hub: recording revision %q: %w", revision, err)
	}
	return nil
}

// link points snapshots/<commit>/<file> at blobs/<etag> with a relative
// symlink (../../blobs/<etag>, deeper for files in folders), as
// huggingface_hub does; where symlinks are not supported it copies the blob.
func (c repoCache) link(commit, file, etag string) (string, error) {
	ptr := c.pointerPath(commit, file)
	blob := c.blobPath(etag)
	if err := os.MkdirAll(filepath.Dir(ptr), 0o755); err != nil {
		return "", fmt.Errorf("hub: creating snapshot folder for %s: %w", file, err)
	}
	rel, err := filepath.Rel(filepath.Dir(ptr), blob)
	if err != nil {
		rel = blob
	}
	// Link under a unique temporary name, then rename over the pointer, so
	// that concurrent downloads of the same file never see a missing link.
	tmp := ptr + "." + rand.Text()[:12] + ".tmp"
	err = os.Symlink(rel, tmp)
	if err == nil {
		if err = os.Rename(tmp, ptr); err == nil {
			return ptr, nil
		}
		os.Remove(tmp)
	}
	if cerr := copyFile(blob, ptr); cerr != nil {
		return "", fmt.Errorf("hub: linking %s into the snapshot: %w (copy fallback: %v)", file, err, cerr)
	}
	return ptr, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + "." + rand.Text()[:12] + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}

// exists reports whether p exists, following symlinks (a dangling snapshot
// link whose blob was deleted does not count).
func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// cachedFiles lists the files of a snapshot folder (slash-separated paths
// relative to it) and, separately, links whose blob is missing.
func cachedFiles(dir string) (files, broken []string, err error) {
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, rerr := filepath.Rel(dir, p)
		if rerr != nil {
			return rerr
		}
		rel = filepath.ToSlash(rel)
		if st, serr := os.Stat(p); serr != nil {
			broken = append(broken, rel)
		} else if !st.IsDir() {
			files = append(files, rel)
		}
		return nil
	})
	sort.Strings(files)
	sort.Strings(broken)
	return files, broken, err
}

// cachedRevisions lists the refs and snapshot commits in a repository's
// cache folder, for error messages.
func (c repoCache) cachedRevisions() []string {
	var out []string
	refs := filepath.Join(c.dir, "refs")
	_ = filepath.WalkDir(refs, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if rel, rerr := filepath.Rel(refs, p); rerr == nil {
				out = append(out, filepath.ToSlash(rel))
			}
		}
		return nil
	})
	if ents, err := os.ReadDir(filepath.Join(c.dir, "snapshots")); err == nil {
		for _, e := range ents {
			out = append(out, e.Name())
		}
	}
	return out
}
