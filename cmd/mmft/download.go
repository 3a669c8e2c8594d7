package main

import (
	"fmt"
	"strings"

	"github.com/mmft-go/mmft/hub"
)

// downloadGlobs collects a repeatable glob flag.
type downloadGlobs []string

func (g *downloadGlobs) String() string { return strings.Join(*g, ",") }

func (g *downloadGlobs) Set(v string) error {
	*g = append(*g, v)
	return nil
}

func runDownload(c *cli, args []string) error {
	fs := c.newFlags("download", "[--dataset] [--revision R] [--include GLOB]... [--exclude GLOB]... REPO",
		`Download a model (or, with --dataset, a dataset) repository from the Hugging Face Hub
into the cache huggingface_hub uses ($HF_HUB_CACHE, default $HF_HOME/hub, default
~/.cache/huggingface/hub), so Python and mmft share downloads, and print the snapshot
folder. Interrupted downloads resume; files are checked against their checksums.
A local folder given as REPO is printed as is (absolute).

Environment: HF_TOKEN (for private or gated repositories), HF_ENDPOINT (a mirror),
HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE=1 (use the cache only).`)
	dataset := fs.Bool("dataset", false, "the repository is a dataset")
	revision := fs.String("revision", "main", "branch, tag or commit hash")
	var include, exclude downloadGlobs
	fs.Var(&include, "include", "download only files matching this glob (repeatable; * also matches /, DIR/ matches a folder)")
	fs.Var(&exclude, "exclude", "skip files matching this glob (repeatable)")
	cacheDir := fs.String("cache-dir", "", "hub cache folder (default: $HF_HUB_CACHE or $HF_HOME/hub)")
	offline := fs.Bool("offline", false, "resolve from the cache only, like HF_HUB_OFFLINE=1")
	quiet := fs.Bool("quiet", false, "no progress bars on stderr")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(c.stderr, "mmft download: want exactly one repository id (e.g. Qwen/Qwen2-VL-2B-Instruct), got %d arguments\n", fs.NArg())
		return errUsage
	}
	opts := hub.Options{
		Revision: *revision,
		Include:  include,
		Exclude:  exclude,
		CacheDir: *cacheDir,
		Offline:  *offline,
	}
	if *dataset {
		opts.RepoType = hub.Dataset
	}
	if !*quiet {
		opts.Progress = c.stderr
	}
	dir, err := hub.Resolve(c.ctx, fs.Arg(0), opts)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, dir)
	return nil
}
