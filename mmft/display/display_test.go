package display

import (
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/mmft-go/mmft/mmft"
)

// TestOutsideANotebookPrintsText checks the path exported programs take:
// no GoNB pipe, so results print as text.
func TestOutsideANotebookPrintsText(t *testing.T) {
	if InNotebook() {
		t.Skip("running under GoNB")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	Show(&mmft.EvalResult{Samples: 4, Accuracy: 0.5, FormatRate: 0.75})
	os.Stdout = old
	w.Close()
	out, _ := io.ReadAll(r)
	if !strings.Contains(string(out), "accuracy 50.0%") || !strings.Contains(string(out), "format rate 75.0%") {
		t.Fatalf("printed %q", out)
	}
}

func TestCheckPanicsWithTheError(t *testing.T) {
	Check(nil)
	want := errors.New("mmft: no model loaded")
	defer func() {
		if p := recover(); p != want {
			t.Fatalf("recovered %v", p)
		}
	}()
	Check(want)
}
