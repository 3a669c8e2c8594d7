package repl

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// The test binary doubles as the REPL program: with MMFT_REPL_CHILD set it
// runs Run on its own terminal, as `mmft repl` does.
func TestMain(m *testing.M) {
	if os.Getenv("MMFT_REPL_CHILD") != "" {
		err := Run(Config{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, HistoryFile: os.Getenv("MMFT_REPL_HISTORY")})
		if err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// session is a REPL child process on a pseudo-terminal.
type session struct {
	t    *testing.T
	cmd  *exec.Cmd
	tty  *os.File
	mu   sync.Mutex
	out  bytes.Buffer
	seen int // output before this offset has been matched already
	done chan struct{}
}

func startSession(t *testing.T, history string) *session {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MMFT_REPL_CHILD=1", "MMFT_REPL_HISTORY="+history, "TERM=xterm")
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 50, Cols: 200})
	if err != nil {
		t.Fatalf("starting the REPL on a pty: %v", err)
	}
	s := &session{t: t, cmd: cmd, tty: tty, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf := make([]byte, 4096)
		for {
			n, err := tty.Read(buf)
			s.mu.Lock()
			s.out.Write(buf[:n])
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		tty.Close()
	})
	return s
}

// send types text on the terminal.
func (s *session) send(text string) {
	s.t.Helper()
	if _, err := s.tty.Write([]byte(text)); err != nil {
		s.t.Fatalf("typing %q: %v", text, err)
	}
}

// expect waits until the output after the last match holds want.
func (s *session) expect(want string) {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s.mu.Lock()
		rest := s.out.String()[s.seen:]
		if i := strings.Index(rest, want); i >= 0 {
			s.seen += i + len(want)
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		if time.Now().After(deadline) {
			s.t.Fatalf("no %q in the REPL's output; it printed after the last match:\n%s", want, rest)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// exit sends Ctrl-D and waits for the process to end well.
func (s *session) exit() {
	s.t.Helper()
	s.send("\x04")
	errc := make(chan error, 1)
	go func() { errc <- s.cmd.Wait() }()
	select {
	case err := <-errc:
		if err != nil {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.t.Fatalf("the REPL ended with %v:\n%s", err, s.out.String())
		}
	case <-time.After(20 * time.Second):
		s.t.Fatal("Ctrl-D did not end the REPL")
	}
}

func TestREPLOnATerminal(t *testing.T) {
	history := filepath.Join(t.TempDir(), "cache", "mmft", "repl_history")
	s := startSession(t, history)
	s.expect(Prompt)

	// State persists from one input to the next.
	s.send("x := 20\r")
	s.expect(Prompt)
	s.send("x*2 + 2\r")
	s.expect("42")
	s.expect(Prompt)

	// A multi-line function: continuation prompts until the brace closes.
	s.send("func add(a, b int) int {\r")
	s.expect(ContinuationPrompt)
	s.send("return a + b\r")
	s.expect(ContinuationPrompt)
	s.send("}\r")
	s.expect(Prompt)
	s.send("add(x, 1000)\r")
	s.expect("1020")

	// An error and a panic are printed and the session goes on.
	s.send("undefinedThing + 1\r")
	s.expect("undefined: undefinedThing")
	s.send("var m map[string]int\r")
	s.send("m[\"k\"] = 1\r")
	s.expect("panic: assignment to entry in nil map")
	s.send("x + 3\r")
	s.expect("23")

	// Ctrl-C cancels a half-typed input, and a running evaluation.
	s.send("func broken() {\r")
	s.expect(ContinuationPrompt)
	s.send("\x03")
	s.expect(Prompt)
	s.send("x + 4\r")
	s.expect("24")
	s.send("for {}\r")
	time.Sleep(300 * time.Millisecond)
	s.send("\x03")
	s.expect("error: interrupted")
	s.send("x + 5\r")
	s.expect("25")

	// The mmft facade.
	s.send(`import "github.com/mmft-go/mmft/rewards"` + "\r")
	s.expect(Prompt)
	s.send(`rewards.ExtractAnswer("<think>t</think><answer>forty-two</answer>")` + "\r")
	s.expect(`"forty-two"`)

	s.send("last := 7\r")
	s.expect(Prompt)
	s.exit()

	data, err := os.ReadFile(history)
	if err != nil || !strings.Contains(string(data), "x := 20\n") || !strings.HasSuffix(string(data), "last := 7\n") {
		t.Fatalf("history file %s: %v\n%s", history, err, data)
	}

	// A new session recalls the last line with the up arrow.
	s2 := startSession(t, history)
	s2.expect(Prompt)
	s2.send("\x1b[A\r")
	s2.expect(Prompt)
	s2.send("last * 6\r")
	s2.expect("42")
	s2.exit()
}
