package data

import (
	"context"
	"fmt"
	"iter"
	"math/rand/v2"
)

// Sample is one training or evaluation example: a document image with one
// question about it and the reference answer. It is what the prompt builder
// and the trainer consume.
type Sample struct {
	// DocID names the document the image comes from.
	DocID string
	// Image is the encoded image file (PNG, JPEG, ...); decode it with image.Decode.
	Image []byte
	// ImagePath is the image's original file name, when known.
	ImagePath string
	// Width, Height and Format describe the image (from its header), as in Row.
	Width, Height int
	Format        string
	// Question is the question, "<image>" removed and trimmed.
	Question string
	// Answer is the reference answer, trimmed.
	Answer string
	// Content is the document's text transcription, when the dataset has one.
	Content string
	// PairIndex is the position of this pair among the document's usable pairs.
	PairIndex int
}

// Sample returns the i-th QA pair of r as a Sample.
func (r Row) Sample(i int) Sample {
	return Sample{DocID: r.DocID, Image: r.Image, ImagePath: r.ImagePath, Width: r.Width, Height: r.Height, Format: r.Format,
		Question: r.QA[i].Question, Answer: r.QA[i].Answer, Content: r.Content, PairIndex: i}
}

// Policy chooses which QA pairs of each document an epoch yields.
type Policy int

const (
	// OnePairPerImage is the seed's policy: each epoch visits every image once,
	// with one of its pairs chosen at random (a different one each epoch).
	OnePairPerImage Policy = iota
	// AllPairs yields every pair of every image once per epoch.
	AllPairs
)

// String names the policy as ParsePolicy reads it.
func (p Policy) String() string {
	switch p {
	case OnePairPerImage:
		return "one-pair-per-image"
	case AllPairs:
		return "all-pairs"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// ParsePolicy reads a policy name as String writes it.
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "one-pair-per-image", "one", "seed":
		return OnePairPerImage, nil
	case "all-pairs", "all":
		return AllPairs, nil
	}
	return 0, fmt.Errorf("data: unknown sampling policy %q (use one-pair-per-image or all-pairs)", s)
}

// DefaultShuffleBuffer is SamplerOptions.ShuffleBuffer's default.
const DefaultShuffleBuffer = 256

// SamplerOptions configures a Sampler. The zero value is the seed's policy,
// shuffled with seed 0.
type SamplerOptions struct {
	// Policy picks the pairs per image; default OnePairPerImage.
	Policy Policy
	// Seed makes the shuffles and pair choices reproducible: the same seed,
	// epoch and data give the same sequence.
	Seed uint64
	// NoShuffle keeps file order (shards, row groups, rows, pairs), e.g. for
	// evaluation. OnePairPerImage still picks each image's pair at random.
	NoShuffle bool
	// ShuffleBuffer is how many samples are held to mix rows of different row
	// groups; default DefaultShuffleBuffer, negative for none.
	ShuffleBuffer int
}

// Sampler draws Samples from a split, epoch by epoch, as a stream.
//
// Shuffling works in three levels so that memory stays bounded by one row
// group plus the buffer, whatever the size of the split: the order of all
// (shard, row group) blocks is permuted, the rows of each block are permuted
// once it is read, and the resulting samples pass through a shuffle buffer of
// ShuffleBuffer samples, which emits a random held sample each time a new one
// arrives. The trade-off: the order is not a uniform permutation of the whole
// split — samples of one row group tend to come out within about
// ShuffleBuffer + row-group-size positions of each other. For Hub files (a few
// hundred rows per group) and the default buffer this mixes well; a larger
// buffer mixes more at the cost of holding more images in memory.
type Sampler struct {
	ds    *Dataset
	split string
	opts  SamplerOptions
}

// NewSampler returns a Sampler over a split of ds.
func NewSampler(ds *Dataset, split string, opts SamplerOptions) (*Sampler, error) {
	if err := ds.checkSplit(split); err != nil {
		return nil, err
	}
	if opts.Policy != OnePairPerImage && opts.Policy != AllPairs {
		return nil, fmt.Errorf("data: unknown sampling policy %v", opts.Policy)
	}
	if opts.ShuffleBuffer == 0 {
		opts.ShuffleBuffer = DefaultShuffleBuffer
	}
	return &Sampler{ds: ds, split: split, opts: opts}, nil
}

// block is one row group of one shard.
type block struct {
	shard int
	group int
}

// rng returns the random source of an epoch: a function of seed and epoch only.
func (s *Sampler) rng(epoch int) *rand.Rand {
	return rand.New(rand.NewPCG(s.opts.Seed, uint64(epoch)*0x9E3779B97F4A7C15^0xD1B54A32D192ED03))
}

// Epoch streams the samples of one epoch (numbered from 0). Bad rows are
// skipped and recorded in rep (which may be nil). An error that stops the
// epoch is yielded once, as the last item.
func (s *Sampler) Epoch(ctx context.Context, epoch int, rep *Report) iter.Seq2[Sample, error] {
	if rep == nil {
		rep = &Report{}
	}
	rep.examples = s.ds.opts.Examples
	return func(yield func(Sample, error) bool) {
		rng := s.rng(epoch)
		files := s.ds.splits[s.split]
		shards := make([]*shard, len(files))
		defer func() {
			for _, sh := range shards {
				if sh != nil {
					sh.Close()
				}
			}
		}()
		var blocks []block
		for i, f := range files {
			sh, err := openShard(f)
			if err != nil {
				yield(Sample{}, err)
				return
			}
			shards[i] = sh
			for g := range sh.pf.RowGroups() {
				blocks = append(blocks, block{i, g})
			}
		}
		shuffle := !s.opts.NoShuffle
		if shuffle {
			rng.Shuffle(len(blocks), func(i, j int) { blocks[i], blocks[j] = blocks[j], blocks[i] })
		}
		bufCap := 0
		if shuffle && s.opts.ShuffleBuffer > 0 {
			bufCap = s.opts.ShuffleBuffer
		}
		buf := make([]Sample, 0, bufCap)
		// emit passes a sample through the shuffle buffer.
		emit := func(smp Sample) bool {
			if bufCap == 0 {
				return yield(smp, nil)
			}
			if len(buf) < bufCap {
				buf = append(buf, smp)
				return true
			}
			i := rng.IntN(len(buf))
			out := buf[i]
			buf[i] = smp
			return yield(out, nil)
		}
		for _, b := range blocks {
			var rows []Row
			err := shards[b.shard].readGroup(ctx, b.group, s.ds.opts, rep, func(r Row) bool {
				rows = append(rows, r)
				return true
			})
			if err != nil {
				yield(Sample{}, err)
				return
			}
			if shuffle {
				rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
			}
			for _, r := range rows {
				if s.opts.Policy == OnePairPerImage {
					if !emit(r.Sample(rng.IntN(len(r.QA)))) {
						return
					}
					continue
				}
				for i := range r.QA {
					if !emit(r.Sample(i)) {
						return
					}
				}
			}
		}
		rng.Shuffle(len(buf), func(i, j int) { buf[i], buf[j] = buf[j], buf[i] })
		for _, smp := range buf {
			if !yield(smp, nil) {
				return
			}
		}
	}
}

// Len counts the samples one epoch yields (good images for OnePairPerImage,
// their pairs for AllPairs) by reading the split once, checking image headers
// as an epoch does; with Options.FullDecode it decodes every image, so it
// costs as much as an epoch.
func (s *Sampler) Len(ctx context.Context) (int64, error) {
	var rep Report
	for _, err := range s.ds.Rows(ctx, s.split, &rep) {
		if err != nil {
			return 0, err
		}
	}
	if s.opts.Policy == AllPairs {
		return rep.Pairs, nil
	}
	return rep.Good, nil
}
