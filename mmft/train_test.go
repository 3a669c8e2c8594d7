package mmft

import (
	"strings"
	"testing"
)

// TestParseStepLayout reads every step layout name and refuses others with
// the choices in the message.
func TestParseStepLayout(t *testing.T) {
	for in, want := range map[string]StepLayout{"": StepFull, "full": StepFull, " Shared ": StepShared, "recompute": StepRecompute} {
		if got, err := ParseStepLayout(in); err != nil || got != want {
			t.Errorf("ParseStepLayout(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseStepLayout("fast"); err == nil || !strings.Contains(err.Error(), "want full, shared or recompute") {
		t.Errorf("ParseStepLayout(fast): %v", err)
	}
}
