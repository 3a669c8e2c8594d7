package compute

import (
	"strings"
	"testing"

	"github.com/gomlx/go-xla/pkg/pjrt"
)

func TestConfigureDispatch(t *testing.T) {
	defer pjrt.SetAwaitExecution(false)
	for _, c := range []struct {
		value string
		sync  bool
	}{{"", false}, {"off", false}, {"0", false}, {"1", true}, {" ON ", true}, {"true", true}} {
		t.Setenv(EnvXLASync, c.value)
		got, err := ConfigureDispatch()
		if err != nil || got != c.sync || pjrt.AwaitExecution() != c.sync {
			t.Errorf("%s=%q: got sync=%v (pjrt %v), err %v; want %v", EnvXLASync, c.value, got, pjrt.AwaitExecution(), err, c.sync)
		}
	}
	t.Setenv(EnvXLASync, "sometimes")
	if _, err := ConfigureDispatch(); err == nil || !strings.Contains(err.Error(), EnvXLASync) {
		t.Errorf("a malformed %s gave %v, want an error naming it", EnvXLASync, err)
	}
}
