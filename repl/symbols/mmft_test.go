package symbols

import (
	"testing"

	"github.com/traefik/yaegi/interp"
	"github.com/traefik/yaegi/stdlib"
)

// TestInterpreterDrivesSession checks that interpreted code (as in `mmft
// repl`) can open an in-process mmft session and call its methods.
func TestInterpreterDrivesSession(t *testing.T) {
	i := interp.New(interp.Options{})
	if err := i.Use(stdlib.Symbols); err != nil {
		t.Fatal(err)
	}
	if err := i.Use(Symbols); err != nil {
		t.Fatal(err)
	}
	if _, err := i.Eval(`import ("context"; "github.com/mmft-go/mmft/mmft")`); err != nil {
		t.Fatal(err)
	}
	if _, err := i.Eval(`var result = func() string {
		s := mmft.Open(mmft.SessionOptions{})
		ctx := context.Background()
		info, err := s.LoadDataset(ctx, "embedded", "train", mmft.DataOptions{Seed: 1})
		if err != nil {
			return err.Error()
		}
		smp, err := s.ShowSamples(ctx, "train", 2)
		if err != nil {
			return err.Error()
		}
		if info.Samples == 0 || len(smp.Items) != 2 {
			return "wrong sizes"
		}
		return "ok " + smp.Items[0].Question
	}()`); err != nil {
		t.Fatal(err)
	}
	v, err := i.Eval("result")
	if err != nil {
		t.Fatal(err)
	}
	if s := v.String(); len(s) < 4 || s[:3] != "ok " {
		t.Fatalf("interpreted session: %q", s)
	}
}
