package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/faciofs/faciofs/audit"
	"github.com/faciofs/faciofs/policy"
	"github.com/faciofs/faciofs/redact"
	"github.com/faciofs/faciofs/resolve"
	"github.com/faciofs/faciofs/store"
)

const (
	fakeExposed = "FAKE-exec-exposed-0001"
	fakeOther   = "FAKE-exec-other-0002"
)

// hideFakes keeps the fake values out of failure messages.
func hideFakes(s string) string {
	return strings.NewReplacer(fakeExposed, "<E>", fakeOther, "<O>").Replace(s)
}

// execServer serves a control socket whose engine exposes E (and knows
// O) under a policy allowing only E; records collects the audit.
type execServer struct {
	srv     *Server
	client  *Client
	mu      sync.Mutex
	records []audit.Record
}

func (s *execServer) audit() []audit.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]audit.Record(nil), s.records...)
}

func newExecServer(t *testing.T) *execServer {
	t.Helper()
	pol, err := policy.Parse([]byte("version: 1\nexec:\n  expose: [E]\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]string{"E": fakeExposed, "O": fakeOther}
	m := redact.NewMatcher([]resolve.Known{{Name: "E", Value: []byte(fakeExposed)}, {Name: "O", Value: []byte(fakeOther)}})
	es := &execServer{}
	srv := &Server{Log: log.New(io.Discard, "", 0), Engine: &Engine{
		Audit: func(r audit.Record, _ []byte) error {
			es.mu.Lock()
			es.records = append(es.records, r)
			es.mu.Unlock()
			return nil
		},
		Exec: &ExecConfig{
			Policy:   func() *policy.Policy { return pol },
			Redactor: func() *redact.Matcher { return m },
			Reveal: func(name string) ([]byte, func(), error) {
				v, ok := values[name]
				if !ok {
					return nil, func() {}, store.ErrNotFound
				}
				b := []byte(v)
				return b, func() { clear(b) }, nil
			},
		},
	}}
	path := filepath.Join(t.TempDir(), "c.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(srv.Close)
	es.client = &Client{path: path}
	es.srv = srv
	return es
}

// pipeStdio gives a child stdin from /dev/null and stdout and stderr
// into one pipe, whose reading end is returned.
func pipeStdio(t *testing.T) ([3]*os.File, *os.File) {
	t.Helper()
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { null.Close(); r.Close(); w.Close() })
	return [3]*os.File{null, w, w}, r
}

func TestExecOverSocket(t *testing.T) {
	s := newExecServer(t)
	stdio, out := pipeStdio(t)
	res, err := s.client.Exec(&Request{Op: OpExec, Expose: []string{"E"}, Dir: "/",
		Argv: []string{"/bin/sh", "-c", `printf '%s %s|' "$E" "$MARK"; echo ` + fakeOther + `; exit 4`},
		Env:  []string{"MARK=m1", "PATH=/usr/bin:/bin"}}, stdio, nil)
	stdio[1].Close()
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(out)
	if string(got) != "[REDACTED:E] m1|[REDACTED:O]\n" || res.ExitCode != 4 || res.Redactions != 2 {
		t.Errorf("exec printed %q, result %+v", hideFakes(string(got)), res)
	}
	recs := s.audit()
	if len(recs) != 2 || recs[0].Event != audit.EventExecStart || recs[1].Event != audit.EventExecEnd ||
		recs[1].Detail != "exit status 4, 2 redactions" || strings.Join(recs[0].Credentials, ",") != "E" {
		t.Errorf("audit: %+v", recs)
	}
	b, _ := json.Marshal(recs)
	if bytes.Contains(b, []byte(fakeExposed)) || bytes.Contains(b, []byte(fakeOther)) {
		t.Error("an audit record holds a value")
	}
}

func TestExecRefusals(t *testing.T) {
	s := newExecServer(t)
	stdio, _ := pipeStdio(t)
	base := Request{Op: OpExec, Expose: []string{"E"}, Dir: "/", Argv: []string{"/bin/true"}}
	for _, c := range []struct {
		name string
		edit func(*Request)
		kind string
		want string
	}{
		{"not in exec.expose", func(r *Request) { r.Expose = []string{"O"} }, KindProblem, "O is not in the policy's exec.expose"},
		{"allowed but unset", func(r *Request) { r.Expose = []string{"E", "E2"} }, KindProblem, "E2 is not in the policy"},
		{"bad name", func(r *Request) { r.Expose = []string{fakeExposed} }, KindUsage, "invalid credential name"},
		{"twice", func(r *Request) { r.Expose = []string{"E", "E"} }, KindUsage, "named twice"},
		{"no command", func(r *Request) { r.Argv = nil }, KindUsage, "no command"},
		{"relative dir", func(r *Request) { r.Dir = "." }, KindUsage, "absolute"},
		{"bad env", func(r *Request) { r.Env = []string{"=x"} }, KindUsage, "environment"},
		{"not found", func(r *Request) { r.Argv = []string{"/nonexistent/cmd"} }, KindCommandNotFound, "not found"},
		{"not executable", func(r *Request) { r.Argv = []string{"/etc/hostname"} }, KindCannotRun, "cannot run"},
		{"no such directory", func(r *Request) { r.Dir = "/nonexistent" }, KindCannotRun, "working directory (no such file or directory)"},
		{"directory is a file", func(r *Request) { r.Dir = "/etc/hostname" }, KindCannotRun, "working directory (not a directory)"},
	} {
		req := base
		c.edit(&req)
		_, err := s.client.Exec(&req, stdio, nil)
		var ce *Error
		if !errors.As(err, &ce) || ce.Kind != c.kind || !strings.Contains(ce.Msg, c.want) || strings.Contains(ce.Msg, "FAKE") {
			t.Errorf("%s: %s, want %s %q", c.name, hideFakes(fmt.Sprint(err)), c.kind, c.want)
		}
	}
	denied := 0
	for _, r := range s.audit() {
		if r.Event == audit.EventExecStart && r.Outcome == audit.OutcomeDenied {
			denied++
		}
	}
	if denied != 2 {
		t.Errorf("%d denied exec.start records, want 2 (the policy refusals)", denied)
	}
}

// TestDescriptorLimits: descriptors beyond MaxFiles are refused (and
// closed), and exec wants exactly three.
func TestDescriptorLimits(t *testing.T) {
	s := newExecServer(t)
	send := func(req string, n int) map[string]any {
		t.Helper()
		conn, err := net.Dial("unix", s.client.path)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fds := make([]int, n)
		for i := range fds {
			fds[i] = int(os.Stdin.Fd())
		}
		var oob []byte
		if n > 0 {
			oob = unix.UnixRights(fds...)
		}
		if _, _, err := conn.(*net.UnixConn).WriteMsgUnix([]byte(req+"\n"), oob, nil); err != nil {
			t.Fatal(err)
		}
		var resp map[string]any
		if err := json.NewDecoder(conn).Decode(&resp); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if r := send(`{"op":"status"}`, MaxFiles+1); r["kind"] != KindUsage || !strings.Contains(r["error"].(string), "descriptors") {
		t.Errorf("%d descriptors: %v", MaxFiles+1, r)
	}
	if r := send(`{"op":"exec","expose":["E"],"argv":["/bin/true"],"dir":"/"}`, 2); r["kind"] != KindUsage || !strings.Contains(r["error"].(string), "three descriptors") {
		t.Errorf("exec with 2 descriptors: %v", r)
	}
	if r := send(`{"op":"scan"}`, 0); r["kind"] != KindUsage {
		t.Errorf("scan without descriptors: %v", r)
	}
}

func TestScanOverSocket(t *testing.T) {
	s := newExecServer(t)
	dir := t.TempDir()
	hit := filepath.Join(dir, "hit")
	if err := os.WriteFile(hit, []byte("a\nb "+fakeOther+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(hit)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	io.CopyN(io.Discard, f, 3) // the daemon reads from offset 0 anyway
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	var res ScanResult
	if err := s.client.CallFiles(&Request{Op: OpScan}, []*os.File{f, r}, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Hits) != 1 || res.Hits[0] != (ScanHit{File: 0, Line: 2, Name: "O", Form: "raw"}) || !strings.Contains(res.Errors[1], "not a regular file") {
		t.Errorf("scan: %+v", res)
	}
	if recs := s.audit(); len(recs) != 1 || recs[0].Event != audit.EventScan || recs[0].Detail != "2 files, 1 hits" {
		t.Errorf("audit: %+v", recs)
	}
}

// TestExecEndsWithServer: closing the server (the mount stopping) ends a
// running child instead of waiting for it.
func TestExecEndsWithServer(t *testing.T) {
	s := newExecServer(t)
	stdio, _ := pipeStdio(t)
	type result struct {
		res ExecResult
		err error
	}
	// The child creates ready before it becomes the sleep: proof that it
	// runs (exec.start is recorded before the child is started, and the
	// output is held back by the redactor, so neither would do).
	ready := filepath.Join(t.TempDir(), "ready")
	done := make(chan result, 1)
	go func() {
		res, err := s.client.Exec(&Request{Op: OpExec, Expose: []string{"E"}, Dir: "/",
			Argv: []string{"/bin/sh", "-c", `: > "$1" && exec /bin/sleep 30`, "sh", ready}}, stdio, nil)
		done <- result{res, err}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		select {
		case r := <-done:
			t.Fatalf("exec ended before the child ran: %+v, %v", r.res, r.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the child did not start within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	s.srv.Close()
	select {
	case r := <-done:
		if r.err != nil || r.res.Signal != int(syscall.SIGTERM) {
			t.Errorf("exec after Close: %+v, %v; want killed by SIGTERM", r.res, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the running child")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v", d)
	}
}
