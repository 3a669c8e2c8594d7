package mmft

import (
	"context"
	"fmt"
	"io"

	"github.com/mmft-go/mmft/data"
	"github.com/mmft-go/mmft/data/synth"
	"github.com/mmft-go/mmft/embedded"
	"github.com/mmft-go/mmft/grpo"
	"github.com/mmft-go/mmft/hub"
)

// Data is one split of a dataset, ready to train or evaluate on.
type Data struct {
	// Ref is what was asked for: "embedded", a folder, a .parquet file or a Hub id.
	Ref, Split string
	// Len is the number of samples in one epoch.
	Len int
	// Epochs yields the samples of an epoch in a seeded order.
	Epochs grpo.EpochFunc
	// Report lists the bad rows met so far (real datasets).
	Report *data.Report
}

// DataOptions configure LoadData.
type DataOptions struct {
	// Seed orders the samples of each epoch.
	Seed uint64
	// NoShuffle keeps file order (evaluation).
	NoShuffle bool
	// Level is the embedded documents' difficulty (synth.Easy by default).
	Level *synth.Level
	// Progress receives download progress of Hub datasets (nil: none).
	Progress io.Writer
}

// LoadData opens a split ("train" or "test") of ref: "embedded" (the
// built-in synthetic financial documents, easy level), a local folder or
// .parquet file in the Sujet layout, or a Hub dataset id.
func LoadData(ctx context.Context, ref, split string, o DataOptions) (*Data, error) {
	if split == "" {
		split = "train"
	}
	if ref == "" || embedded.IsName(ref) {
		level := synth.Easy
		if o.Level != nil {
			level = *o.Level
		}
		train, test, err := synth.Default(level)
		if err != nil {
			return nil, fmt.Errorf("mmft: embedded data: %w", err)
		}
		docs := train
		switch split {
		case "train":
		case "test":
			docs = test
		default:
			return nil, fmt.Errorf("mmft: the embedded data has splits train and test, not %q", split)
		}
		ep := grpo.DocEpochs(docs, o.Seed)
		if o.NoShuffle {
			ep = grpo.DocEpochsInOrder(docs)
		}
		return &Data{Ref: embedded.Name, Split: split, Len: len(docs), Epochs: ep, Report: &data.Report{}}, nil
	}
	ds, err := data.Open(ctx, ref, data.Options{Resolve: func(ctx context.Context, repoID string) (string, error) {
		return hub.Resolve(ctx, repoID, hub.Options{RepoType: hub.Dataset, Progress: o.Progress})
	}})
	if err != nil {
		return nil, err
	}
	s, err := data.NewSampler(ds, split, data.SamplerOptions{Seed: o.Seed, NoShuffle: o.NoShuffle})
	if err != nil {
		return nil, err
	}
	n, err := s.Len(ctx)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, fmt.Errorf("mmft: %s split %s holds no usable sample", ref, split)
	}
	return &Data{Ref: ref, Split: split, Len: int(n), Epochs: grpo.DatasetEpochs(s), Report: &data.Report{}}, nil
}
