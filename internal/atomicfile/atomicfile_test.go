package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteReplacesWhole(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f.txt")
	if err := WriteBytes(p, []byte("first")); err != nil {
		t.Fatal(err)
	}
	if err := WriteBytes(p, []byte("second")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "second" {
		t.Fatalf("got %q, %v", b, err)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v", st.Mode())
	}
}

func TestFailedWriteKeepsOldFileAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.txt")
	if err := WriteBytes(p, []byte("good")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Write(p, func(w io.Writer) error {
		w.Write([]byte("half"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("want the fill error, got %v", err)
	}
	b, _ := os.ReadFile(p)
	if string(b) != "good" {
		t.Fatalf("old file changed to %q", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary file left behind: %v", entries)
	}
	if err := WriteBytes(filepath.Join(dir, "missing", "x"), nil); err == nil {
		t.Fatal("write into a missing folder succeeded")
	}
}

// TestRemoveTemps checks the registry: a Write in progress is listed, and
// RemoveTemps removes its temporary file, which makes that Write fail and
// leave nothing behind.
func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "big.bin")
	inFill, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Write(p, func(w io.Writer) error {
			close(inFill)
			<-release
			_, err := w.Write([]byte("data"))
			return err
		})
	}()
	<-inFill
	temps := Temps()
	if len(temps) != 1 || filepath.Dir(temps[0]) != dir {
		t.Fatalf("live temps %v", temps)
	}
	if removed := RemoveTemps(); len(removed) != 1 || removed[0] != temps[0] {
		t.Fatalf("RemoveTemps removed %v, want %v", removed, temps)
	}
	close(release)
	if err := <-done; err == nil {
		t.Fatal("a Write whose temporary file was removed succeeded")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 || len(Temps()) != 0 {
		t.Fatalf("left behind: %v, registry %v", entries, Temps())
	}
}

func TestCheckDest(t *testing.T) {
	dir := t.TempDir()
	if err := CheckDest(filepath.Join(dir, "ok.bin")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, want string }{
		{dir, "is a folder"},
		{filepath.Join(dir, "no", "such", "f.bin"), "its folder"},
		{"", "no output path"},
	} {
		if err := CheckDest(c.path); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CheckDest(%q) = %v, want %q", c.path, err, c.want)
		}
	}
	if err := WriteBytes(dir, []byte("x")); err == nil || !strings.Contains(err.Error(), "is a folder") {
		t.Errorf("Write over a folder: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("CheckDest left %v", entries)
	}
	if FreeBytes(filepath.Join(dir, "not", "yet")) <= 0 {
		t.Error("FreeBytes unknown for a folder under the test's temp dir")
	}
}

func TestWriteModeKeepsSecretsPrivate(t *testing.T) {
	p := filepath.Join(t.TempDir(), "secret.json")
	if err := WriteMode(p, 0o600, func(w io.Writer) error {
		_, err := w.Write([]byte("key"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", st.Mode(), err)
	}
	b, _ := os.ReadFile(p)
	if string(b) != "key" {
		t.Fatalf("got %q", b)
	}
}
