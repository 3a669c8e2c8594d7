package kernel

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
)

// freePort returns a loopback port nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestServerRejectsBadSignaturesAndShutsDown talks to the kernel in-process over
// ZeroMQ: a request signed with another key gets no answer, a good one does,
// shutdown_request on control is answered there and Run returns with its folder gone.
func TestServerRejectsBadSignaturesAndShutsDown(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	root, _ := filepath.Abs("..")
	conn := Connection{Transport: "tcp", IP: "127.0.0.1", ShellPort: freePort(t), ControlPort: freePort(t),
		StdinPort: freePort(t), IOPubPort: freePort(t), HBPort: freePort(t), Key: "the-key", SignatureScheme: "hmac-sha256"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, conn, Options{Source: root, Goimports: "goimports-not-needed", Dir: tmp}) }()

	dial := func(port int) zmq4.Socket {
		s := zmq4.NewDealer(ctx, zmq4.WithDialerRetry(50*time.Millisecond))
		if err := s.Dial(conn.endpoint(port)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	shell, control := dial(conn.ShellPort), dial(conn.ControlPort)
	good, bad := signer{key: []byte(conn.Key)}, signer{key: []byte("another-key")}
	send := func(s zmq4.Socket, sg signer, msgType string, content string) string {
		m := &message{header: newHeader(msgType, "test"), content: json.RawMessage(content)}
		frames, err := sg.encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(zmq4.NewMsgFrom(frames...)); err != nil {
			t.Fatal(err)
		}
		return m.header.MsgID
	}
	recv := func(s zmq4.Socket) *message {
		raw, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		m, err := good.decode(raw.Frames)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	send(shell, bad, "kernel_info_request", "{}")
	id := send(shell, good, "kernel_info_request", "{}")
	reply := recv(shell)
	var parent header
	json.Unmarshal(reply.parentRaw, &parent)
	if reply.header.MsgType != "kernel_info_reply" || parent.MsgID != id {
		t.Fatalf("got %s to %s, want the kernel_info_reply to the well-signed request %s", reply.header.MsgType, parent.MsgID, id)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 1 {
		t.Fatalf("TMPDIR holds %d entries, want the kernel's folder", len(entries))
	}

	id = send(control, good, "shutdown_request", `{"restart": false}`)
	reply = recv(control)
	json.Unmarshal(reply.parentRaw, &parent)
	if reply.header.MsgType != "shutdown_reply" || parent.MsgID != id {
		t.Fatalf("got %s to %s on control, want shutdown_reply to %s", reply.header.MsgType, parent.MsgID, id)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Run did not return after shutdown_request")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		entries, _ := os.ReadDir(tmp)
		if len(entries) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the kernel's folder is left: %v", entries)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
