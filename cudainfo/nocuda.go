//go:build !cuda

package cudainfo

// Built reports whether this binary asks the CUDA driver (the cuda build tag).
const Built = false

func query() (Report, error) { return Report{}, ErrNotBuilt }
