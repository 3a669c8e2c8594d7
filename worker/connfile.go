package worker

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mmft-go/mmft/internal/atomicfile"
)

// DefaultName is the worker name used when none is given.
const DefaultName = "default"

// errInsecureFile marks a connection file that others may read.
var errInsecureFile = errors.New("refused")

// maxConnectionFileBytes bounds the connection file read from disk.
const maxConnectionFileBytes = 64 << 10

// ConnectionInfo is the content of a worker's connection file: where its
// sockets listen and the key that signs every message.
type ConnectionInfo struct {
	// Name is the worker's name (several workers may run under different names).
	Name string `json:"name"`
	// PID is the worker's process id.
	PID int `json:"pid"`
	// ProcStart is the process start time in clock ticks since boot as Linux's
	// /proc/PID/stat gives it (0 where unknown); with PID it tells the worker from
	// a later process that reused its pid.
	ProcStart uint64 `json:"proc_start,omitempty"`
	// Shell is the request/reply endpoint (the worker's ROUTER socket).
	Shell string `json:"shell"`
	// Events is the publish/subscribe endpoint (the worker's PUB socket).
	Events string `json:"events"`
	// Key is the hex-encoded HMAC key (32 random bytes).
	Key string `json:"key"`
	// SignatureScheme is always "hmac-sha256".
	SignatureScheme string `json:"signature_scheme"`
	// Version is the wire protocol version, ProtocolVersion.
	Version string `json:"version"`
	// Started is when the worker started.
	Started time.Time `json:"started"`
}

// RuntimeDir is the folder where workers keep their connection files, logs and
// ipc sockets: $XDG_RUNTIME_DIR/mmft when that variable is set, else the user's
// cache folder (~/.cache/mmft on Linux).
func RuntimeDir() (string, error) {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "mmft"), nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("worker: no runtime folder: %w; set XDG_RUNTIME_DIR or HOME", err)
	}
	return filepath.Join(d, "mmft"), nil
}

// ConnectionFile is the path of the connection file of the worker named name in dir.
func ConnectionFile(dir, name string) string {
	return filepath.Join(dir, "worker-"+name+".json")
}

// LogFile is the path where a worker started by Connect writes its output.
func LogFile(dir, name string) string {
	return filepath.Join(dir, "worker-"+name+".log")
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// checkName refuses a worker name that is not a plain file-name word.
func checkName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("worker: name %q: use 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit", name)
	}
	return nil
}

// resolveDir returns dir, or RuntimeDir when empty, created with mode 0700.
func resolveDir(dir string) (string, error) {
	if dir == "" {
		var err error
		if dir, err = RuntimeDir(); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("worker: creating the runtime folder: %w", err)
	}
	return dir, nil
}

// writeConnectionFile writes info to path atomically with mode 0600.
func writeConnectionFile(path string, info ConnectionInfo) error {
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return fmt.Errorf("worker: encoding the connection file: %w", err)
	}
	if err := atomicfile.WriteMode(path, 0o600, func(w io.Writer) error {
		_, err := w.Write(append(b, '\n'))
		return err
	}); err != nil {
		return fmt.Errorf("worker: connection file: %w", err)
	}
	return nil
}

// ReadConnectionFile reads and checks a worker's connection file. It refuses a
// file that others may read (its key would be known), a file over 64 KiB, and
// endpoints other than loopback TCP or ipc.
func ReadConnectionFile(path string) (ConnectionInfo, error) {
	var info ConnectionInfo
	f, err := os.Open(path)
	if err != nil {
		return info, fmt.Errorf("worker: connection file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return info, fmt.Errorf("worker: connection file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return info, fmt.Errorf("worker: connection file %s has mode %04o, so others may read its key: %w; delete it and start the worker again", path, st.Mode().Perm(), errInsecureFile)
	}
	if st.Size() > maxConnectionFileBytes {
		return info, fmt.Errorf("worker: connection file %s is %d bytes, over the %d a connection file can be; delete it", path, st.Size(), maxConnectionFileBytes)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxConnectionFileBytes))
	if err != nil {
		return info, fmt.Errorf("worker: connection file %s: %w", path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&info); err != nil {
		return info, fmt.Errorf("worker: connection file %s is not valid: %w; delete it", path, err)
	}
	if err := info.check(); err != nil {
		return info, fmt.Errorf("worker: connection file %s: %w; delete it", path, err)
	}
	return info, nil
}

// check validates the fields of a connection file.
func (info ConnectionInfo) check() error {
	if info.Version != ProtocolVersion {
		return fmt.Errorf("protocol %q, this client speaks %q (stop the old worker)", info.Version, ProtocolVersion)
	}
	if info.SignatureScheme != SignatureScheme {
		return fmt.Errorf("signature scheme %q, want %q", info.SignatureScheme, SignatureScheme)
	}
	if info.PID <= 0 {
		return fmt.Errorf("pid %d", info.PID)
	}
	if k, err := hex.DecodeString(info.Key); err != nil || len(k) != keyBytes {
		return fmt.Errorf("the key is not %d hex-encoded bytes", keyBytes)
	}
	if err := CheckEndpoint(info.Shell, false); err != nil {
		return err
	}
	return CheckEndpoint(info.Events, false)
}

// key returns the decoded signing key.
func (info ConnectionInfo) key() []byte {
	k, _ := hex.DecodeString(info.Key)
	return k
}

// maxIPCPath is the longest socket path Linux accepts (sun_path less its NUL).
const maxIPCPath = 107

// CheckEndpoint accepts only tcp://127.0.0.1:PORT and ipc:///ABSOLUTE/PATH;
// everything else (another interface, a host name, a wildcard, other
// transports) is refused. PORT 0 (let the OS choose) is accepted only when
// listen is true.
func CheckEndpoint(ep string, listen bool) error {
	refuse := func(why string) error {
		return fmt.Errorf("worker: endpoint %q refused (%s): only tcp://127.0.0.1:PORT or ipc:///ABSOLUTE/PATH are allowed", ep, why)
	}
	switch {
	case strings.HasPrefix(ep, "tcp://"):
		host, port, err := net.SplitHostPort(strings.TrimPrefix(ep, "tcp://"))
		if err != nil {
			return refuse(err.Error())
		}
		if host != "127.0.0.1" {
			return refuse("not the loopback address 127.0.0.1")
		}
		p, err := strconv.Atoi(port)
		if err != nil || p < 0 || p > 65535 || (p == 0 && !listen) {
			return refuse("bad port")
		}
		return nil
	case strings.HasPrefix(ep, "ipc://"):
		path := strings.TrimPrefix(ep, "ipc://")
		if !filepath.IsAbs(path) || filepath.Clean(path) != path {
			return refuse("not a clean absolute path")
		}
		if len(path) > maxIPCPath {
			return refuse(fmt.Sprintf("the socket path is %d bytes, over the %d Linux allows; use a shorter runtime folder or tcp", len(path), maxIPCPath))
		}
		return nil
	}
	return refuse("unknown transport")
}

// procStart returns the start time of process pid in clock ticks since boot,
// from /proc (Linux); 0 where unknown.
func procStart(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) is in parentheses and may hold spaces; the
	// fields after its closing parenthesis start at field 3, so starttime
	// (field 22) is the 20th of them.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 {
		return 0
	}
	v, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// processAlive reports whether process pid exists and, when start is not 0 and
// the system tells start times, is the process that started then.
func processAlive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	if err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	if start != 0 {
		if now := procStart(pid); now != 0 && now != start {
			return false // the pid was reused
		}
	}
	return true
}

// alive reports whether the worker the file names is still running.
func (info ConnectionInfo) alive() bool {
	return processAlive(info.PID, info.ProcStart)
}

// removeIfOurs removes the connection file at path if it still names the
// worker with this pid and key, so that a successor's file is never removed.
func removeIfOurs(path string, pid int, key string) {
	info, err := ReadConnectionFile(path)
	if err != nil || info.PID != pid || info.Key != key {
		return
	}
	os.Remove(path)
}

// lockFile takes an exclusive advisory lock on path (created 0600), polling
// until ctx ends. Connect holds it while it finds or starts a worker, so that
// two cells starting at once start one worker.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("worker: lock file: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("worker: locking %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("worker: waiting for %s (another process is starting the worker): %w", path, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
