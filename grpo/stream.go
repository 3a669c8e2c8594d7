package grpo

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"

	"github.com/mmft-go/mmft/data"
	"github.com/mmft-go/mmft/data/synth"
)

// EpochFunc returns the samples of one epoch (numbered from 0) in a
// reproducible order: the same epoch always yields the same sequence.
type EpochFunc func(ctx context.Context, epoch int) iter.Seq2[data.Sample, error]

// Stream hands training samples out one at a time across epochs and knows
// its position, so a resumed run continues exactly where a checkpoint was
// taken.
type Stream struct {
	open  EpochFunc
	epoch int // current epoch
	index int // samples already taken from it
	next  func() (data.Sample, error, bool)
	stop  func()
}

// NewStream returns a stream at the start of epoch 0.
func NewStream(open EpochFunc) *Stream { return &Stream{open: open} }

// Position returns where the stream stands: the epoch and how many of its
// samples were taken.
func (s *Stream) Position() (epoch, index int) { return s.epoch, s.index }

// Seek moves the stream to a position (from a checkpoint) by replaying the
// epoch's order up to it.
func (s *Stream) Seek(ctx context.Context, epoch, index int) error {
	if epoch < 0 || index < 0 {
		return fmt.Errorf("grpo: data position epoch %d index %d is negative", epoch, index)
	}
	s.Close()
	s.epoch, s.index = epoch, 0
	for s.index < index {
		if _, err := s.take(ctx, false); err != nil {
			return fmt.Errorf("grpo: seeking to sample %d of epoch %d: %w", index, epoch, err)
		}
	}
	return nil
}

// Next returns the next sample, moving to the next epoch when one ends.
func (s *Stream) Next(ctx context.Context) (data.Sample, error) { return s.take(ctx, true) }

func (s *Stream) take(ctx context.Context, cross bool) (data.Sample, error) {
	for tries := 0; tries < 2; tries++ {
		if s.next == nil {
			s.next, s.stop = iter.Pull2(s.open(ctx, s.epoch))
		}
		smp, err, ok := s.next()
		if ok {
			if err != nil {
				return data.Sample{}, err
			}
			s.index++
			return smp, nil
		}
		if !cross {
			return data.Sample{}, fmt.Errorf("epoch %d has only %d samples", s.epoch, s.index)
		}
		if s.index == 0 {
			return data.Sample{}, errors.New("grpo: the training data yields no sample")
		}
		s.Close()
		s.epoch, s.index = s.epoch+1, 0
	}
	return data.Sample{}, errors.New("grpo: the training data yields no sample")
}

// Close releases the current epoch's iterator.
func (s *Stream) Close() {
	if s.stop != nil {
		s.stop()
	}
	s.next, s.stop = nil, nil
}

// DatasetEpochs streams a split of a dataset through a seeded data.Sampler
// (the seed's one-pair-per-image policy unless opts says otherwise).
func DatasetEpochs(s *data.Sampler) EpochFunc {
	return func(ctx context.Context, epoch int) iter.Seq2[data.Sample, error] {
		return s.Epoch(ctx, epoch, nil)
	}
}

// DocEpochs streams generated documents (data/synth): each epoch visits
// every document once in an order shuffled by seed and epoch, with one of
// its question/answer pairs drawn at random.
func DocEpochs(docs []synth.Doc, seed uint64) EpochFunc {
	return func(ctx context.Context, epoch int) iter.Seq2[data.Sample, error] {
		return func(yield func(data.Sample, error) bool) {
			rng := rand.New(rand.NewPCG(seed, uint64(epoch)*0x9E3779B97F4A7C15+1))
			for _, i := range rng.Perm(len(docs)) {
				if err := ctx.Err(); err != nil {
					yield(data.Sample{}, err)
					return
				}
				d := docs[i]
				if len(d.QA) == 0 {
					continue
				}
				k := rng.IntN(len(d.QA))
				smp := data.Sample{DocID: d.ID, Image: d.PNG, Width: d.Width, Height: d.Height, Format: "png",
					Question: d.QA[k].Question, Answer: d.QA[k].Answer, Content: d.Content, PairIndex: k}
				if !yield(smp, nil) {
					return
				}
			}
		}
	}
}

// DocEpochsInOrder streams generated documents in order, each with its
// first question/answer pair (for evaluation).
func DocEpochsInOrder(docs []synth.Doc) EpochFunc {
	return func(ctx context.Context, epoch int) iter.Seq2[data.Sample, error] {
		return func(yield func(data.Sample, error) bool) {
			for _, d := range docs {
				if len(d.QA) == 0 {
					continue
				}
				smp := data.Sample{DocID: d.ID, Image: d.PNG, Width: d.Width, Height: d.Height, Format: "png",
					Question: d.QA[0].Question, Answer: d.QA[0].Answer, Content: d.Content}
				if !yield(smp, nil) {
					return
				}
			}
		}
	}
}
