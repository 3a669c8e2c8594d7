package main

import (
	"fmt"

	"github.com/mmft-go/mmft/hub"
	"github.com/mmft-go/mmft/lora"
	"github.com/mmft-go/mmft/qwen2vl"
)

// resolveModel turns a --model value into a local folder: a folder is used as
// it is; a Hub repository id (ORG/NAME) is downloaded into the Hugging Face
// cache (or found there, offline with HF_HUB_OFFLINE=1), with progress on stderr.
// include limits the download to the files the command needs (nil: all).
func (c *cli) resolveModel(ref string, include ...string) (string, error) {
	return hub.Resolve(c.ctx, ref, hub.Options{Include: include, Progress: c.stderr})
}

// adapterFor loads the PEFT adapter folder dir onto m's device ("" gives
// nil: the base model).
func adapterFor(m *qwen2vl.Model, dir string) (*qwen2vl.LoRA, error) {
	if dir == "" {
		return nil, nil
	}
	ad, err := lora.Load(dir)
	if err != nil {
		return nil, err
	}
	l, err := m.LoRAFromAdapter(ad)
	if err != nil {
		return nil, fmt.Errorf("adapter %s: %w", dir, err)
	}
	return l, nil
}
