// Package atomicfile writes files so that a reader never sees a half-written
// one: the content goes to a temporary file in the same folder, which is
// flushed, synced and renamed over the destination only when complete.
//
// The temporary files being written are kept in a registry so that a process
// stopped by a signal can remove them (RemoveTemps) before it exits; a
// command that cancels its work on the signal removes them anyway, as each
// Write removes its own temporary file on any error.
package atomicfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// live is the set of temporary files being written by Write.
var live = struct {
	sync.Mutex
	paths map[string]bool
}{paths: map[string]bool{}}

// Write creates or replaces path with what fill writes (buffered). On any
// error the temporary file is removed and an existing file at path is left as
// it was. The new file gets mode 0644.
func Write(path string, fill func(w io.Writer) error) error {
	return WriteMode(path, 0o644, fill)
}

// WriteMode is Write with the new file's permission bits given. The temporary
// file is created with mode 0600 and only widened to perm once complete, so a
// secret written with perm 0600 is never readable by others, not even briefly.
func WriteMode(path string, perm os.FileMode, fill func(w io.Writer) error) (err error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("cannot write %s: it is a folder; give a file path", path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	register(tmp.Name())
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
		unregister(tmp.Name())
	}()
	w := bufio.NewWriterSize(tmp, 1<<20)
	if err = fill(w); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = w.Flush(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	if err = tmp.Chmod(perm); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("moving %s into place: %w", path, err)
	}
	return nil
}

// WriteBytes is Write for content already in memory.
func WriteBytes(path string, data []byte) error {
	return Write(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// CheckDest reports, before any work is done, why path could not be written:
// it names a folder, its folder does not exist, or its folder does not take
// new files. Commands call it on their output paths before computing, so that
// an unwritable --out fails at once rather than after the work.
func CheckDest(path string) error {
	if path == "" {
		return errors.New("no output path given")
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("cannot write %s: it is a folder; give a file path", path)
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("cannot write %s: its folder %s: %w", path, dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("cannot write %s: %s is not a folder", path, dir)
	}
	probe, err := os.CreateTemp(dir, "."+filepath.Base(path)+".probe-*")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	return nil
}

// RemoveTemps removes every temporary file that a Write in this process has
// not finished, and returns their paths. A signal handler calls it before the
// process exits; a Write still running afterwards fails.
func RemoveTemps() []string {
	live.Lock()
	defer live.Unlock()
	var removed []string
	for p := range live.paths {
		if err := os.Remove(p); err == nil {
			removed = append(removed, p)
		}
		delete(live.paths, p)
	}
	return removed
}

// Temps returns the temporary files being written now.
func Temps() []string {
	live.Lock()
	defer live.Unlock()
	out := make([]string, 0, len(live.paths))
	for p := range live.paths {
		out = append(out, p)
	}
	return out
}

func register(p string) {
	live.Lock()
	live.paths[p] = true
	live.Unlock()
}

func unregister(p string) {
	live.Lock()
	delete(live.paths, p)
	live.Unlock()
}

// FreeBytes returns the bytes free for an unprivileged writer on the file
// system holding dir (or its nearest existing parent); 0 when unknown.
func FreeBytes(dir string) int64 {
	for {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err == nil {
			return int64(st.Bavail) * int64(st.Bsize)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return 0
		}
		dir = parent
	}
}
