package data

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Resolver turns a Hub dataset id (ORG/NAME) into a local folder holding the
// dataset's files, downloading them if needed. The CLI passes one built on the
// hub package; data itself never touches the network.
type Resolver func(ctx context.Context, repoID string) (dir string, err error)

// Dataset is an opened dataset: its parquet shards grouped by split. Opening
// reads no rows; Rows streams them. A Dataset is safe for concurrent use: each
// pass opens its own file handles.
type Dataset struct {
	// Root is the folder the shards were found under (or the single file given).
	Root string
	// splits maps a split name to its shard paths, sorted.
	splits map[string][]string
	opts   Options
}

// Open finds the parquet shards of a dataset. src is one of:
//   - a folder holding data/<split>-*.parquet (the Hub layout), or the
//     parquet files directly, or <split>/*.parquet subfolders;
//   - a Hugging Face cache folder datasets--ORG--NAME (its refs/main snapshot
//     is used) or one of its snapshots/<commit> folders;
//   - a single .parquet file (its split is taken from its name);
//   - a Hub dataset id ORG/NAME, handed to opts.Resolve.
//
// The split of a shard is the part of its name before "-NNNNN-of-NNNNN"
// (train-00000-of-00002.parquet is train), else a leading train/test/
// validation word, else the name of its folder.
func Open(ctx context.Context, src string, opts Options) (*Dataset, error) {
	if src == "" {
		return nil, fmt.Errorf("data: no dataset given: pass a folder, a .parquet file or a Hub dataset id (ORG/NAME)")
	}
	opts = opts.withDefaults()
	path := src
	if strings.HasPrefix(path, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			path = filepath.Join(home, path[2:])
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		if !os.IsNotExist(err) {
			return nil, fmt.Errorf("data: %s: %w", src, err)
		}
		if !looksLikeRepoID(src) {
			return nil, fmt.Errorf("data: %s does not exist (give a dataset folder, a .parquet file or a Hub dataset id ORG/NAME)", src)
		}
		if opts.Resolve == nil {
			// Integration point: callers that can download (the CLI, with the hub
			// package) set Options.Resolve.
			return nil, fmt.Errorf("data: %s is not a local path and looks like a Hub dataset id, but no downloader is configured; "+
				"download it first (mmft download --repo-type dataset %s) and pass the folder", src, src)
		}
		dir, err := opts.Resolve(ctx, src)
		if err != nil {
			return nil, fmt.Errorf("data: fetching Hub dataset %s: %w", src, err)
		}
		path, st = dir, nil
		if st, err = os.Stat(path); err != nil {
			return nil, fmt.Errorf("data: resolved %s to %s: %w", src, path, err)
		}
	}
	ds := &Dataset{splits: map[string][]string{}, opts: opts}
	if !st.IsDir() {
		if !strings.HasSuffix(strings.ToLower(path), ".parquet") {
			return nil, fmt.Errorf("data: %s is not a .parquet file or a folder", src)
		}
		ds.Root = path
		split := splitOf(path)
		ds.splits[split] = []string{path}
		return ds, nil
	}
	root := hfCacheSnapshot(path)
	ds.Root = root
	files, err := findParquet(root)
	if err != nil {
		return nil, fmt.Errorf("data: looking for parquet files in %s: %w", root, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("data: no .parquet files in %s (expected data/train-*.parquet and data/test-*.parquet, "+
			"as in a Hugging Face dataset repository)", root)
	}
	for _, f := range files {
		s := splitOf(f)
		ds.splits[s] = append(ds.splits[s], f)
	}
	for _, fs := range ds.splits {
		sort.Strings(fs)
	}
	return ds, nil
}

var repoIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$`)

func looksLikeRepoID(s string) bool {
	return repoIDPattern.MatchString(s) && !strings.HasPrefix(s, ".")
}

// hfCacheSnapshot maps a huggingface_hub cache folder (datasets--ORG--NAME) to
// the snapshot its refs/main points to; other folders are returned unchanged.
func hfCacheSnapshot(dir string) string {
	snaps := filepath.Join(dir, "snapshots")
	if st, err := os.Stat(snaps); err != nil || !st.IsDir() {
		return dir
	}
	if ref, err := os.ReadFile(filepath.Join(dir, "refs", "main")); err == nil {
		cand := filepath.Join(snaps, strings.TrimSpace(string(ref)))
		if st, err := os.Stat(cand); err == nil && st.IsDir() {
			return cand
		}
	}
	// No usable ref: take the only snapshot, if there is exactly one.
	entries, err := os.ReadDir(snaps)
	if err == nil && len(entries) == 1 && entries[0].IsDir() {
		return filepath.Join(snaps, entries[0].Name())
	}
	return dir
}

// findParquet lists the .parquet files under dir: those of dir/data when it has
// any, else every one below dir (hidden folders skipped).
func findParquet(dir string) ([]string, error) {
	if st, err := os.Stat(filepath.Join(dir, "data")); err == nil && st.IsDir() {
		files, err := walkParquet(filepath.Join(dir, "data"))
		if err != nil || len(files) > 0 {
			return files, err
		}
	}
	return walkParquet(dir)
}

func walkParquet(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != dir && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(strings.ToLower(d.Name()), ".parquet") {
			files = append(files, p)
		}
		return nil
	})
	return files, err
}

var (
	shardName  = regexp.MustCompile(`^(.+?)-\d{5}-of-\d{5}(\.[^.]+)*\.parquet$`)
	splitWord  = regexp.MustCompile(`(?i)^(train|test|validation|valid|val|dev|eval)([-_.]|$)`)
	knownSplit = map[string]bool{"train": true, "test": true, "validation": true, "valid": true, "val": true, "dev": true, "eval": true}
)

// splitOf names the split a shard belongs to.
func splitOf(path string) string {
	base := filepath.Base(path)
	if m := shardName.FindStringSubmatch(base); m != nil {
		return m[1]
	}
	if m := splitWord.FindStringSubmatch(base); m != nil {
		return strings.ToLower(m[1])
	}
	if parent := strings.ToLower(filepath.Base(filepath.Dir(path))); knownSplit[parent] {
		return parent
	}
	return "train"
}

// Splits returns the split names, sorted.
func (ds *Dataset) Splits() []string {
	return slices.Sorted(maps.Keys(ds.splits))
}

// Files returns the shard paths of a split, sorted, or nil for an unknown split.
func (ds *Dataset) Files(split string) []string {
	return append([]string(nil), ds.splits[split]...)
}

// checkSplit returns an error naming the available splits when split is unknown.
func (ds *Dataset) checkSplit(split string) error {
	if _, ok := ds.splits[split]; !ok {
		return fmt.Errorf("data: no split %q in %s (it has: %s)", split, ds.Root, strings.Join(ds.Splits(), ", "))
	}
	return nil
}
