package worker

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Wire constants; see the package documentation for the format.
const (
	// ProtocolVersion is the "version" field of every message header.
	ProtocolVersion = "mmft-worker/1"
	// SignatureScheme names the signing of every message, as in Jupyter's connection files.
	SignatureScheme = "hmac-sha256"
	// MaxMessageBytes bounds one message on the wire (all its frames together). The
	// worker drops a connection that announces a bigger frame before it reads it,
	// and the client refuses to send a bigger request.
	MaxMessageBytes = 256 << 20

	delimiter = "<IDS|MSG>"
	// keyBytes is the length of the random signing key.
	keyBytes = 32
	// maxFrames bounds the frames of one message on the wire (this protocol uses at most 7).
	maxFrames = 16
	// replayWindow is how far a message's date may be from the receiver's clock.
	// Within it the receiver remembers every signature it accepted, so a replayed
	// message is refused; outside it the date alone refuses it.
	replayWindow = 2 * time.Minute
	// maxRemembered bounds the signatures remembered for replay detection.
	maxRemembered = 1 << 20
)

// Message types.
const (
	typeHello            = "hello_request"
	typeHelloReply       = "hello_reply"
	typeWelcome          = "welcome"
	typeHeartbeat        = "heartbeat_request"
	typeHeartbeatReply   = "heartbeat_reply"
	typeCommand          = "command_request"
	typeCommandReply     = "command_reply"
	typeCancel           = "cancel_request"
	typeProgress         = "progress"
	statusOK             = "ok"
	statusError          = "error"
	statusCancelled      = "cancelled"
	maxIDLen             = 64
	maxHeaderFieldLength = 128
)

// header is the header (and parent header) of a message.
type header struct {
	MsgID   string    `json:"msg_id"`
	Session string    `json:"session"`
	MsgType string    `json:"msg_type"`
	Date    time.Time `json:"date"`
	Version string    `json:"version"`
}

// message is one decoded, verified message.
type message struct {
	Header  header
	Parent  header // zero when the message answers nothing
	Content json.RawMessage
}

// commandRequest is the content of a command_request.
type commandRequest struct {
	Command string          `json:"command"`
	Args    json.RawMessage `json:"args"`
}

// commandReply is the content of a command_reply.
type commandReply struct {
	Status   string          `json:"status"`
	Result   json.RawMessage `json:"result,omitempty"`
	Error    string          `json:"error,omitempty"`
	Panicked bool            `json:"panicked,omitempty"`
	Events   int             `json:"events"`
}

// cancelRequest is the content of a cancel_request.
type cancelRequest struct {
	RequestID string `json:"request_id"`
}

// progressContent is the content of a progress event.
type progressContent struct {
	Seq   int             `json:"seq"`
	Event json.RawMessage `json:"event"`
}

// newID returns a random 128-bit identifier in hex.
func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("worker: no randomness: %v", err)) // crypto/rand never fails on supported systems
	}
	return hex.EncodeToString(b[:])
}

// newKey returns a random signing key.
func newKey() ([]byte, error) {
	key := make([]byte, keyBytes)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("worker: generating the signing key: %w", err)
	}
	return key, nil
}

// signer signs and verifies messages with one key.
type signer struct {
	key []byte
}

// sign returns the hex HMAC-SHA256 of the four signed frames.
func (s signer) sign(frames ...[]byte) []byte {
	mac := hmac.New(sha256.New, s.key)
	for _, f := range frames {
		mac.Write(f)
	}
	sum := mac.Sum(nil)
	out := make([]byte, hex.EncodedLen(len(sum)))
	hex.Encode(out, sum)
	return out
}

// encode returns the frames of a message: delimiter, signature, header, parent,
// metadata, content. A nil parent is sent as {}.
func (s signer) encode(h header, parent *header, content any) ([][]byte, error) {
	hb, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("worker: encoding a %s header: %w", h.MsgType, err)
	}
	pb := []byte("{}")
	if parent != nil {
		if pb, err = json.Marshal(parent); err != nil {
			return nil, fmt.Errorf("worker: encoding a %s parent header: %w", h.MsgType, err)
		}
	}
	cb, err := json.Marshal(content)
	if err != nil {
		return nil, fmt.Errorf("worker: encoding a %s: %w", h.MsgType, err)
	}
	meta := []byte("{}")
	if n := len(hb) + len(pb) + len(meta) + len(cb) + 200; n > MaxMessageBytes {
		return nil, fmt.Errorf("worker: a %s of %d bytes is over the limit of %d bytes; send large data as a file path", h.MsgType, n, MaxMessageBytes)
	}
	return [][]byte{[]byte(delimiter), s.sign(hb, pb, meta, cb), hb, pb, meta, cb}, nil
}

// Errors of decode; the receiver logs them and drops the message.
var (
	errMalformed    = errors.New("malformed message")
	errBadSignature = errors.New("bad signature")
	errReplayed     = errors.New("replayed message")
	errStale        = errors.New("message dated outside the accepted window")
)

// decode verifies and parses the frames of a message (delimiter first) and
// returns the message with its signature. It never panics on any input.
func (s signer) decode(frames [][]byte) (message, []byte, error) {
	var m message
	if len(frames) != 6 {
		return m, nil, fmt.Errorf("%w: %d frames after the routing prefix, want 6", errMalformed, len(frames))
	}
	if !bytes.Equal(frames[0], []byte(delimiter)) {
		return m, nil, fmt.Errorf("%w: no %s delimiter", errMalformed, delimiter)
	}
	sig := frames[1]
	if len(sig) == 0 {
		return m, nil, fmt.Errorf("%w: unsigned", errBadSignature)
	}
	if !hmac.Equal(sig, s.sign(frames[2], frames[3], frames[4], frames[5])) {
		return m, nil, errBadSignature
	}
	if err := json.Unmarshal(frames[2], &m.Header); err != nil {
		return m, nil, fmt.Errorf("%w: header: %v", errMalformed, err)
	}
	if err := checkHeader(m.Header); err != nil {
		return m, nil, fmt.Errorf("%w: header: %v", errMalformed, err)
	}
	if err := json.Unmarshal(frames[3], &m.Parent); err != nil {
		return m, nil, fmt.Errorf("%w: parent header: %v", errMalformed, err)
	}
	var meta map[string]json.RawMessage
	if err := json.Unmarshal(frames[4], &meta); err != nil {
		return m, nil, fmt.Errorf("%w: metadata: %v", errMalformed, err)
	}
	if !json.Valid(frames[5]) || len(frames[5]) == 0 || frames[5][0] != '{' {
		return m, nil, fmt.Errorf("%w: content is not a JSON object", errMalformed)
	}
	m.Content = frames[5]
	return m, sig, nil
}

// checkHeader validates the fields of a header.
func checkHeader(h header) error {
	switch {
	case h.Version != ProtocolVersion:
		return fmt.Errorf("version %q, want %q", h.Version, ProtocolVersion)
	case h.MsgID == "" || len(h.MsgID) > maxIDLen:
		return fmt.Errorf("msg_id of %d bytes, want 1..%d", len(h.MsgID), maxIDLen)
	case h.Session == "" || len(h.Session) > maxIDLen:
		return fmt.Errorf("session of %d bytes, want 1..%d", len(h.Session), maxIDLen)
	case h.MsgType == "" || len(h.MsgType) > maxHeaderFieldLength:
		return fmt.Errorf("msg_type of %d bytes", len(h.MsgType))
	case h.Date.IsZero():
		return errors.New("no date")
	}
	return nil
}

// replayGuard refuses a message seen before, or dated outside the window.
type replayGuard struct {
	mu        sync.Mutex
	seen      map[string]time.Time // signature → message date
	lastPrune time.Time
}

func newReplayGuard() *replayGuard {
	return &replayGuard{seen: make(map[string]time.Time)}
}

// check accepts the message with this signature and date once.
func (g *replayGuard) check(sig []byte, date, now time.Time) error {
	if date.Before(now.Add(-replayWindow)) || date.After(now.Add(replayWindow)) {
		return fmt.Errorf("%w: dated %s, the worker's clock says %s", errStale, date.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	key := string(sig)
	if _, dup := g.seen[key]; dup {
		return errReplayed
	}
	if len(g.seen) >= maxRemembered/2 && now.Sub(g.lastPrune) > time.Second {
		g.lastPrune = now
		for k, d := range g.seen {
			if d.Before(now.Add(-replayWindow)) {
				delete(g.seen, k)
			}
		}
	}
	if len(g.seen) >= maxRemembered {
		return fmt.Errorf("%w: more than %d messages within %s", errMalformed, maxRemembered, replayWindow)
	}
	g.seen[key] = date
	return nil
}
