package kernel

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/gob"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/janpfeifer/gonb/gonbui/protocol"
)

// interruptGrace is how long a cell has to stop after SIGINT before it is killed.
const interruptGrace = 2 * time.Second

// stderrTail is how much of a cell's stderr is kept for its error report.
const stderrTail = 64 << 10

// workspace is the kernel's private folder: the cell module, the go.work that ties it
// to the mmft source, the named pipes and the Go build's temporary files.
type workspace struct {
	dir     string
	cellDir string
	env     []string
}

// newWorkspace creates the folder under the system's temporary folder. The go.work
// makes the cell module see the mmft module at source, whose go.mod pins every
// dependency (gonbui included), so no build looks anything up on the network.
func newWorkspace(source string) (*workspace, error) {
	goVersion, err := moduleGoVersion(filepath.Join(source, "go.mod"))
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "mmft-kernel-")
	if err != nil {
		return nil, fmt.Errorf("kernel: workspace: %w", err)
	}
	w := &workspace{dir: dir, cellDir: filepath.Join(dir, "cell")}
	files := map[string]string{
		filepath.Join(w.cellDir, "go.mod"): "module mmftcell\n\ngo " + goVersion + "\n",
		filepath.Join(dir, "go.work"):      "go " + goVersion + "\n\nuse (\n\t./cell\n\t" + strconv.Quote(source) + "\n)\n",
	}
	for _, d := range []string{w.cellDir, filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("kernel: workspace: %w", err)
		}
	}
	for name, text := range files {
		if err := os.WriteFile(name, []byte(text), 0o600); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("kernel: workspace: %w", err)
		}
	}
	w.env = append(os.Environ(),
		"GOWORK="+filepath.Join(dir, "go.work"),
		"GOTMPDIR="+filepath.Join(dir, "tmp"),
		"GOTOOLCHAIN=local",
		"GOFLAGS=-mod=readonly",
	)
	return w, nil
}

// moduleGoVersion reads the go directive of a go.mod.
func moduleGoVersion(gomod string) (string, error) {
	data, err := os.ReadFile(gomod)
	if err != nil {
		return "", fmt.Errorf("kernel: mmft source: %w (pass the folder of mmft's go.mod)", err)
	}
	if !bytes.Contains(data, []byte("module github.com/mmft-go/mmft\n")) {
		return "", fmt.Errorf("kernel: mmft source: %s is not the go.mod of github.com/mmft-go/mmft", gomod)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "go "); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("kernel: mmft source: %s has no go directive", gomod)
}

// output receives what a running cell produces.
type output interface {
	stream(name, text string)
	display(d *protocol.DisplayData)
}

// runError is a cell that failed at run time, as Jupyter's error fields.
type runError struct {
	ename, evalue string
	traceback     []string
}

func (e *runError) Error() string { return e.ename + ": " + e.evalue }

// executor builds and runs cells one at a time.
type executor struct {
	ws        *workspace
	goimports string
	userDir   string
	state     *state
	// executable is the mmft program, given to cells as $MMFT_EXECUTABLE.
	executable string
	// started reports the process group of each process a cell starts (for the reaper).
	started func(pgid int)

	mu          sync.Mutex
	cancel      context.CancelFunc
	interrupted bool
}

// interrupt stops the running cell, if any: SIGINT to its process group, SIGKILL
// after interruptGrace.
func (x *executor) interrupt() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.cancel != nil {
		x.interrupted = true
		x.cancel()
	}
}

// execute runs one cell. It returns a *compileError, a *runError or another error.
func (x *executor) execute(ctx context.Context, number int, code string, out output) error {
	ctx, cancel := context.WithCancel(ctx)
	x.mu.Lock()
	x.cancel, x.interrupted = cancel, false
	x.mu.Unlock()
	defer func() {
		x.mu.Lock()
		x.cancel = nil
		x.mu.Unlock()
		cancel()
	}()
	c, err := splitCell(number, code)
	if err != nil {
		return &compileError{lines: []string{err.Error()}}
	}
	if c.help {
		out.stream("stdout", helpText+"\n")
	}
	for _, sh := range c.shell {
		if err := x.runShell(ctx, c.number, sh, out); err != nil {
			return err
		}
	}
	p, err := parseCell(x.state, c)
	if err != nil {
		return err
	}
	if len(p.next.units) == 0 && p.mainUnit == nil && strings.TrimSpace(p.body) == "" {
		x.state = p.next
		return nil
	}
	src, bin, err := x.build(ctx, p, number)
	if err != nil {
		return err
	}
	x.state = p.next
	if p.mainUnit == nil && strings.TrimSpace(p.body) == "" {
		return nil // declarations only: compiled, nothing to run
	}
	return x.run(ctx, number, src, bin, out)
}

// build writes the cell's program, lets goimports find its imports and compiles it.
// A last expression that is no value (a call with no or several results) is run
// as a plain statement instead.
func (x *executor) build(ctx context.Context, p *program, number int) (source, string, error) {
	src, bin, err := x.buildOnce(ctx, p, number)
	var ce *compileError
	if p.show != nil && errors.As(err, &ce) && ctx.Err() == nil {
		plain := *p
		plain.show = nil
		if src2, bin2, err2 := x.buildOnce(ctx, &plain, number); err2 == nil {
			return src2, bin2, nil
		}
	}
	return src, bin, err
}

func (x *executor) buildOnce(ctx context.Context, p *program, number int) (source, string, error) {
	mainGo := filepath.Join(x.ws.cellDir, "main.go")
	draft := compose(p, number, importSpecs(p.next.imports))
	if err := os.WriteFile(mainGo, []byte(draft.text), 0o600); err != nil {
		return draft, "", fmt.Errorf("kernel: write cell program: %w", err)
	}
	fixed, stderr, err := x.tool(ctx, x.goimports, mainGo)
	if err != nil {
		if ctx.Err() != nil {
			return draft, "", x.stopped()
		}
		lines := draft.mapCompilerOutput(string(stderr))
		if len(lines) == 0 {
			lines = []string{fmt.Sprintf("goimports: %v", err)}
		}
		return draft, "", &compileError{lines: lines}
	}
	imports, err := importsOf(fixed)
	if err != nil {
		return draft, "", &compileError{lines: []string{"goimports: " + err.Error()}}
	}
	var specs []string
	for _, is := range imports {
		if !strings.HasPrefix(is.spec, helperPrefix) {
			p.next.imports[is.path] = is.spec
			specs = append(specs, is.spec)
		}
	}
	src := compose(p, number, specs)
	if err := os.WriteFile(mainGo, []byte(src.text), 0o600); err != nil {
		return src, "", fmt.Errorf("kernel: write cell program: %w", err)
	}
	bin := filepath.Join(x.ws.cellDir, "cell")
	_, built, err := x.tool(ctx, "go", "build", "-o", bin, ".")
	if err != nil {
		if ctx.Err() != nil {
			return src, "", x.stopped()
		}
		return src, "", &compileError{lines: src.mapCompilerOutput(string(built))}
	}
	return src, bin, nil
}

// tool runs goimports or go in the cell module, in its own process group that the
// reaper knows (a kernel killed mid-build leaves no compiler writing into its
// folder), and returns its stdout and stderr.
func (x *executor) tool(ctx context.Context, name string, args ...string) ([]byte, []byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = x.ws.cellDir, x.ws.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("kernel: run %s: %w", name, err)
	}
	pgid := cmd.Process.Pid
	if x.started != nil {
		x.started(pgid)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			syscall.Kill(-pgid, syscall.SIGKILL)
		case <-done:
		}
	}()
	err := cmd.Wait()
	close(done)
	return stdout.Bytes(), stderr.Bytes(), err
}

// importSpec is one import of a Go file: its path and its spec as written.
type importSpec struct{ path, spec string }

// importsOf returns the imports of a Go file.
func importsOf(code []byte) ([]importSpec, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "main.go", code, parser.ImportsOnly)
	if err != nil {
		return nil, err
	}
	var specs []importSpec
	for _, is := range f.Imports {
		path, _ := strconv.Unquote(is.Path.Value)
		spec := is.Path.Value
		if is.Name != nil {
			spec = is.Name.Name + " " + spec
		}
		specs = append(specs, importSpec{path, spec})
	}
	return specs, nil
}

// stopped is the error of a cell stopped by an interrupt.
func (x *executor) stopped() error {
	return &runError{ename: "Interrupted", evalue: "the cell was interrupted", traceback: []string{"Interrupted: the cell was interrupted"}}
}

// runShell runs a "!" line with bash.
func (x *executor) runShell(ctx context.Context, number int, sh shellLine, out output) error {
	shell := "bash"
	if _, err := exec.LookPath(shell); err != nil {
		shell = "sh"
	}
	cmd := exec.Command(shell, "-c", sh.cmd)
	cmd.Dir = x.userDir
	cmd.Env = x.cellEnv()
	err := x.runProcess(ctx, cmd, out, nil)
	var re *runError
	if errors.As(err, &re) && re.ename != "Interrupted" {
		re.ename = "ShellError"
		re.evalue = fmt.Sprintf("cell[%d]:%d: !%s: %s", number, sh.line, sh.cmd, re.evalue)
		re.traceback = []string{re.ename + ": " + re.evalue}
	}
	return err
}

// EnvExecutable names the variable that gives cells the mmft program.
const EnvExecutable = "MMFT_EXECUTABLE"

// cellEnv is the environment of a cell's program and shell lines.
func (x *executor) cellEnv() []string {
	env := append(os.Environ(), protocol.GONB_DIR_ENV+"="+x.userDir, protocol.GONB_TMP_DIR_ENV+"="+x.ws.cellDir)
	if x.executable != "" {
		env = append(env, EnvExecutable+"="+x.executable)
	}
	return env
}

// run runs a cell's compiled program with gonbui's pipes.
func (x *executor) run(ctx context.Context, number int, src source, bin string, out output) error {
	toKernel := filepath.Join(x.ws.dir, "pipe")
	fromKernel := filepath.Join(x.ws.dir, "pipe-back")
	pipes := make([]*os.File, 0, 2)
	defer func() {
		for _, f := range pipes {
			f.Close()
		}
		os.Remove(toKernel)
		os.Remove(fromKernel)
	}()
	for _, name := range []string{toKernel, fromKernel} {
		os.Remove(name)
		if err := syscall.Mkfifo(name, 0o600); err != nil {
			return fmt.Errorf("kernel: display pipe: %w", err)
		}
		// Read-write opens never block, and keep the pipe open whatever the cell does.
		f, err := os.OpenFile(name, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("kernel: display pipe: %w", err)
		}
		pipes = append(pipes, f)
	}
	cmd := exec.Command(bin)
	cmd.Dir = x.userDir
	cmd.Env = append(x.cellEnv(), protocol.GONB_PIPE_ENV+"="+toKernel, protocol.GONB_PIPE_BACK_ENV+"="+fromKernel)
	displays := make(chan struct{})
	go func() {
		defer close(displays)
		readDisplays(pipes[0], pipes[1], out)
	}()
	err := x.runProcess(ctx, cmd, out, func(re *runError, stderr string) {
		mainGo := filepath.Join(x.ws.cellDir, "main.go")
		describePanic(re, src.mapTrace(mainGo, stderr))
		if re.ename != "panic" {
			re.evalue = fmt.Sprintf("cell[%d]: %s", number, re.evalue)
			re.traceback[0] = re.ename + ": " + re.evalue
		}
	})
	// The cell is gone: what it wrote is in the pipe; read it, then stop.
	pipes[0].SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	<-displays
	return err
}

// runProcess runs cmd in its own process group, streaming its output, and turns a
// failure into a *runError; explain can refine the error from the stderr kept.
func (x *executor) runProcess(ctx context.Context, cmd *exec.Cmd, out output, explain func(*runError, string)) error {
	stdout := newStreamWriter(0, func(s string) { out.stream("stdout", s) })
	stderr := newStreamWriter(stderrTail, func(s string) { out.stream("stderr", s) })
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = interruptGrace
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("kernel: start %s: %w", cmd.Path, err)
	}
	pgid := cmd.Process.Pid
	if x.started != nil {
		x.started(pgid)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			syscall.Kill(-pgid, syscall.SIGINT)
			select {
			case <-done:
			case <-time.After(interruptGrace):
				syscall.Kill(-pgid, syscall.SIGKILL)
			}
		case <-done:
		}
	}()
	err := cmd.Wait()
	close(done)
	if errors.Is(err, exec.ErrWaitDelay) {
		err = nil // it exited well; something it started still holds its output
	}
	stdout.Flush()
	stderr.Flush()
	x.mu.Lock()
	interrupted := x.interrupted
	x.mu.Unlock()
	if interrupted {
		syscall.Kill(-pgid, syscall.SIGKILL)
		return x.stopped()
	}
	if err == nil {
		return nil
	}
	re := &runError{ename: "ExitError", evalue: err.Error()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			re.evalue = "killed by signal " + ws.Signal().String()
		} else {
			re.evalue = fmt.Sprintf("exit status %d", ee.ExitCode())
		}
	}
	re.traceback = []string{re.ename + ": " + re.evalue}
	if explain != nil {
		explain(re, stderr.Tail())
	}
	return re
}

// describePanic fills re from a Go panic in stderr (with its stack mapped to cell lines).
func describePanic(re *runError, stderr string) {
	i := strings.LastIndex(stderr, "panic: ")
	if i < 0 {
		if t := strings.TrimSpace(stderr); t != "" {
			lines := strings.Split(t, "\n")
			re.traceback = append(re.traceback, lines[max(0, len(lines)-20):]...)
		}
		return
	}
	// The first "panic: " of the last run of panics is the original one.
	if j := strings.Index(stderr, "panic: "); j >= 0 {
		i = j
	}
	trace := strings.Split(strings.TrimRight(stderr[i:], "\n"), "\n")
	msg := strings.TrimPrefix(trace[0], "panic: ")
	re.ename, re.evalue = "panic", msg
	keep := trace
	if len(keep) > 60 {
		keep = keep[:60]
	}
	re.traceback = append([]string{}, keep...)
	for _, l := range trace {
		if strings.Contains(l, "cell[") {
			re.evalue = msg + " (at " + strings.Fields(strings.TrimSpace(l))[0] + ")"
			break
		}
	}
}

// readDisplays decodes gonbui's messages until r fails, answering its sync requests on w.
func readDisplays(r io.Reader, w io.Writer, out output) {
	dec := gob.NewDecoder(r)
	enc := gob.NewEncoder(w)
	for {
		var d protocol.DisplayData
		if err := dec.Decode(&d); err != nil {
			return
		}
		if v, ok := d.Data[protocol.MIMECommValue]; ok {
			var cv protocol.CommValue
			switch v := v.(type) {
			case protocol.CommValue:
				cv = v
			case *protocol.CommValue:
				cv = *v
			}
			if cv.Address == protocol.GonbuiSyncAddress {
				ack := &protocol.CommValue{Address: protocol.GonbuiSyncAckAddress, Value: cv.Value}
				if err := enc.Encode(ack); err != nil {
					return
				}
			}
			continue
		}
		if _, ok := d.Data[protocol.MIMECommSubscribe]; ok {
			continue
		}
		if _, ok := d.Data[protocol.MIMEJupyterInput]; ok {
			out.stream("stderr", "mmft kernel: input requests are not supported\n")
			continue
		}
		out.display(&d)
	}
}

// mimeBundle turns gonbui's display data into Jupyter's MIME bundle: text stays
// text, bytes (images) become base64.
func mimeBundle(data map[protocol.MIMEType]any) map[string]any {
	b := make(map[string]any, len(data))
	for k, v := range data {
		switch v := v.(type) {
		case []byte:
			b[string(k)] = base64.StdEncoding.EncodeToString(v)
		case string:
			b[string(k)] = v
		default:
			b[string(k)] = fmt.Sprint(v)
		}
	}
	return b
}
