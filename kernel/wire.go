package kernel

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"os"
	"time"
)

// protocolVersion is the version of Jupyter's messaging protocol the kernel speaks.
const protocolVersion = "5.3"

// delimiter separates the ZeroMQ routing identities from the signed parts of a message.
const delimiter = "<IDS|MSG>"

// Connection is the content of the connection file Jupyter gives a kernel:
// where to listen and the key that signs every message.
type Connection struct {
	// Transport is "tcp" or "ipc"; IP the address (or, for ipc, the path prefix).
	Transport string `json:"transport"`
	IP        string `json:"ip"`
	// The ports of the five channels.
	ShellPort   int `json:"shell_port"`
	ControlPort int `json:"control_port"`
	StdinPort   int `json:"stdin_port"`
	IOPubPort   int `json:"iopub_port"`
	HBPort      int `json:"hb_port"`
	// Key signs every message with SignatureScheme (hmac-sha256); empty disables signing.
	Key             string `json:"key"`
	SignatureScheme string `json:"signature_scheme"`
	// KernelName is the kernelspec's name, when Jupyter writes it.
	KernelName string `json:"kernel_name,omitempty"`
}

// ReadConnection reads and checks a Jupyter connection file.
func ReadConnection(path string) (Connection, error) {
	var c Connection
	data, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("kernel: connection file: %w", err)
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("kernel: connection file %s: %w (it must be the JSON file Jupyter passes with -f)", path, err)
	}
	if c.Transport != "tcp" && c.Transport != "ipc" {
		return c, fmt.Errorf("kernel: connection file %s: transport %q is not supported (use tcp or ipc)", path, c.Transport)
	}
	if c.SignatureScheme != "" && c.SignatureScheme != "hmac-sha256" {
		return c, fmt.Errorf("kernel: connection file %s: signature scheme %q is not supported (use hmac-sha256)", path, c.SignatureScheme)
	}
	for name, p := range map[string]int{"shell_port": c.ShellPort, "control_port": c.ControlPort, "stdin_port": c.StdinPort, "iopub_port": c.IOPubPort, "hb_port": c.HBPort} {
		if p <= 0 || p > 65535 {
			return c, fmt.Errorf("kernel: connection file %s: %s %d is not a port", path, name, p)
		}
	}
	return c, nil
}

// endpoint is the ZeroMQ address of one of the connection's channels.
func (c Connection) endpoint(port int) string {
	if c.Transport == "ipc" {
		return fmt.Sprintf("ipc://%s-%d", c.IP, port)
	}
	return fmt.Sprintf("tcp://%s:%d", c.IP, port)
}

// header is a Jupyter message header.
type header struct {
	MsgID    string `json:"msg_id"`
	Session  string `json:"session"`
	Username string `json:"username"`
	Date     string `json:"date"`
	MsgType  string `json:"msg_type"`
	Version  string `json:"version"`
}

// message is one Jupyter message, decoded.
type message struct {
	identities [][]byte
	header     header
	// parentRaw is the parent header exactly as received or to be sent.
	parentRaw json.RawMessage
	metadata  map[string]any
	content   json.RawMessage
	// received is when the kernel read the message.
	received time.Time
}

// signer signs and checks messages with the connection's key (HMAC-SHA256);
// an empty key disables signing, as Jupyter's protocol allows.
type signer struct {
	key []byte
}

func (s signer) mac() hash.Hash {
	if len(s.key) == 0 {
		return nil
	}
	return hmac.New(sha256.New, s.key)
}

func (s signer) sign(parts ...[]byte) []byte {
	m := s.mac()
	if m == nil {
		return nil
	}
	for _, p := range parts {
		m.Write(p)
	}
	return []byte(hex.EncodeToString(m.Sum(nil)))
}

// decode parses the frames of a message received on a ROUTER socket and checks its signature.
func (s signer) decode(frames [][]byte) (*message, error) {
	i := 0
	for i < len(frames) && string(frames[i]) != delimiter {
		i++
	}
	if i == len(frames) {
		return nil, errors.New("kernel: message without the <IDS|MSG> delimiter")
	}
	if i+6 > len(frames) {
		return nil, errors.New("kernel: message with fewer than five parts after the delimiter")
	}
	sig, hdr, parent, meta, content := frames[i+1], frames[i+2], frames[i+3], frames[i+4], frames[i+5]
	if want := s.sign(hdr, parent, meta, content); want != nil && !hmac.Equal(want, sig) {
		return nil, errors.New("kernel: message with a bad signature (is the connection file's key the client's?)")
	}
	m := &message{identities: frames[:i], parentRaw: parent, content: content, received: time.Now()}
	if err := json.Unmarshal(hdr, &m.header); err != nil {
		return nil, fmt.Errorf("kernel: message header: %w", err)
	}
	if len(meta) > 0 {
		if err := json.Unmarshal(meta, &m.metadata); err != nil {
			return nil, fmt.Errorf("kernel: message metadata: %w", err)
		}
	}
	return m, nil
}

// encode returns the frames of a message, signed.
func (s signer) encode(m *message) ([][]byte, error) {
	hdr, err := json.Marshal(m.header)
	if err != nil {
		return nil, fmt.Errorf("kernel: encode header: %w", err)
	}
	parent := m.parentRaw
	if len(parent) == 0 {
		parent = json.RawMessage("{}")
	}
	meta := []byte("{}")
	if m.metadata != nil {
		if meta, err = json.Marshal(m.metadata); err != nil {
			return nil, fmt.Errorf("kernel: encode metadata: %w", err)
		}
	}
	content := m.content
	if len(content) == 0 {
		content = json.RawMessage("{}")
	}
	frames := make([][]byte, 0, len(m.identities)+6)
	frames = append(frames, m.identities...)
	frames = append(frames, []byte(delimiter), s.sign(hdr, parent, meta, content), hdr, parent, meta, content)
	return frames, nil
}

// newID returns a random message or session id.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newHeader returns the header of a new message of the given type in session.
func newHeader(msgType, session string) header {
	return header{
		MsgID:    newID(),
		Session:  session,
		Username: "kernel",
		Date:     time.Now().UTC().Format(time.RFC3339Nano),
		MsgType:  msgType,
		Version:  protocolVersion,
	}
}
