//go:build !unix

package hub

import "context"

// lockFile is a no-op where flock(2) is not available; downloads still land
// atomically, two processes may only fetch the same blob twice.
func lockFile(context.Context, string) (func(), error) { return func() {}, nil }
