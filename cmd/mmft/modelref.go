package main

import (
	"github.com/mmft-go/mmft/hub"
)

// resolveModel turns a --model value into a local folder: a folder is used as
// it is; a Hub repository id (ORG/NAME) is downloaded into the Hugging Face
// cache (or found there, offline with HF_HUB_OFFLINE=1), with progress on stderr.
// include limits the download to the files the command needs (nil: all).
func (c *cli) resolveModel(ref string, include ...string) (string, error) {
	return hub.Resolve(c.ctx, ref, hub.Options{Include: include, Progress: c.stderr})
}
