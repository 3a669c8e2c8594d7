package execution

// Bucket returns the size a dimension of n is padded to: the smallest value
// ≥ max(n, least) of the ladder least·{1, 1.5, 2, 3, 4, 6, 8, …} (powers of
// two and one and a half times powers of two, so at most a third is padding),
// rounded up to a multiple of multiple (0 or 1: no rounding). Sizes from
// least to N fall into about 2·log₂(N/least) buckets, which bounds how many
// programs a dataset of varied shapes compiles. least < 1 counts as 1.
func Bucket(n, least, multiple int) int {
	least = max(least, 1)
	b := least
	for b < n {
		half := b + b/2
		if b >= 2 && half >= n && half > b {
			b = half
			break
		}
		b *= 2
	}
	if multiple > 1 && b%multiple != 0 {
		b += multiple - b%multiple
	}
	return b
}
