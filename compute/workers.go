package compute

import (
	"fmt"
	"reflect"
	"unsafe"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
)

// setWorkers sets the worker-pool size of a pure-Go backend that has not run
// anything yet.
//
// GoMLX v0.26's only public way to size the pool, simplego.New("parallelism=N"),
// also prints "SimpleGo backend: parallelism set to N" with fmt.Printf, that
// is to the process's standard output. mmft's commands write JSON there and a
// long-lived worker may speak a protocol on it, so the line must not appear;
// hiding it by swapping os.Stdout would silence every other goroutine of the
// process meanwhile. Instead the new backend's pool field (workers.maxParallelism,
// the value simplego.New sets) is written directly, before any work starts.
// If a GoMLX upgrade changes that layout, this fails with a clear error and
// TestCPUWorkersSet fails; check simplego.New's "parallelism" option then.
func setWorkers(b backends.Backend, n int) error {
	sb, ok := b.(*simplego.Backend)
	if !ok {
		return fmt.Errorf("compute: the CPU backend is a %T, not GoMLX's pure-Go backend", b)
	}
	f := workersField(sb)
	if !f.IsValid() || f.Kind() != reflect.Int {
		return fmt.Errorf("compute: cannot size the pure-Go backend's worker pool: GoMLX's simplego.Backend no longer has workers.maxParallelism (int); update compute/workers.go for this GoMLX version")
	}
	reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().SetInt(int64(n))
	return nil
}

// workers returns the worker-pool size of a pure-Go backend, -1 when unknown.
func workers(b backends.Backend) int {
	sb, ok := b.(*simplego.Backend)
	if !ok {
		return -1
	}
	f := workersField(sb)
	if !f.IsValid() || f.Kind() != reflect.Int {
		return -1
	}
	return int(f.Int())
}

func workersField(sb *simplego.Backend) reflect.Value {
	w := reflect.ValueOf(sb).Elem().FieldByName("workers")
	if !w.IsValid() || w.Kind() != reflect.Struct {
		return reflect.Value{}
	}
	return w.FieldByName("maxParallelism")
}

// sequentialOps reports whether a pure-Go backend runs each program's
// operations one at a time (simplego's "ops_sequential" option: its
// opsExecutionType field is opsExecutionSequential, the third value).
func sequentialOps(b backends.Backend) bool {
	sb, ok := b.(*simplego.Backend)
	if !ok {
		return false
	}
	f := reflect.ValueOf(sb).Elem().FieldByName("opsExecutionType")
	return f.IsValid() && f.Kind() == reflect.Int && f.Int() == 2
}
