package shared

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestAbsentSkipsOutsideCIFailsInCI runs a child test that asks for a fixture
// that does not exist: without CI it is skipped with the message, with
// CI=true it fails with a message saying CI must run the fixture tests.
func TestAbsentSkipsOutsideCIFailsInCI(t *testing.T) {
	if os.Getenv("MMFT_SHARED_CHILD") == "1" {
		Fixture(t, "no-such-fixture.bin")
		t.Log("fixture found")
		return
	}
	dir := t.TempDir()
	for _, c := range []struct {
		ci       string
		fails    bool
		inOutput string
	}{
		{"", false, "skipping: fixtures/no-such-fixture.bin is absent"},
		{"false", false, "skipping: fixtures/no-such-fixture.bin is absent"},
		{"true", true, "CI=true and fixtures/no-such-fixture.bin is absent"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestAbsentSkipsOutsideCIFailsInCI$", "-test.v")
		cmd.Env = append(os.Environ(), "MMFT_SHARED_CHILD=1", "CI="+c.ci, EnvVar+"="+dir)
		out, err := cmd.CombinedOutput()
		if (err != nil) != c.fails || !strings.Contains(string(out), c.inOutput) {
			t.Errorf("CI=%q: error %v, output:\n%s\nwant failure %v and %q", c.ci, err, out, c.fails, c.inOutput)
		}
	}
	t.Setenv(EnvVar, dir+"/missing")
	if _, err := Find(); err == nil {
		t.Error("Find accepted a missing $" + EnvVar)
	}
}
