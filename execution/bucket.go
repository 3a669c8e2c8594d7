package execution

// Bucket returns the size a dimension of n is padded to: the smallest value
// ≥ max(n, least) of the ladder least·{1, 1.5, 2, 3, 4, 6, 8, …} (powers of
// two and one and a half times powers of two, so at most a third is padding),
// rounded up to a multiple of multiple (0 or 1: no rounding). Sizes from
// least to N fall into about 2·log₂(N/least) buckets, which bounds how many
// programs a dataset of varied shapes compiles. least < 1 counts as 1.
func Bucket(n, least, multiple int) int { return bucket(n, least, multiple, 2) }

// BucketFine is Bucket on the finer ladder least·{1, 1.25, 1.5, 1.75, 2, 2.5,
// …} (four steps per doubling, so at most a fifth of a bucket beyond least is
// padding), rounded up to a multiple of multiple. Sizes from least to N fall
// into about 4·log₂(N/least) buckets: for dimensions whose padding costs more
// than the programs the extra buckets compile (the trainer's prompt length,
// which every decoder layer pays for, forward and backward).
func BucketFine(n, least, multiple int) int { return bucket(n, least, multiple, 4) }

// bucket returns the smallest value ≥ max(n, least) of the ladder
// least·2ᵏ·(1 + j/steps), j < steps, rounded up to a multiple of multiple.
func bucket(n, least, multiple, steps int) int {
	least = max(least, 1)
	b := least
	for b < n {
		next := 2 * b
		for j := 1; j < steps; j++ {
			if v := b + b*j/steps; v > b && v >= n {
				next = v
				break
			}
		}
		b = next
	}
	if multiple > 1 && b%multiple != 0 {
		b += multiple - b%multiple
	}
	return b
}
