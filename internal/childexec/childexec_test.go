package childexec

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/faciofs/faciofs/internal/testkit"
	"github.com/faciofs/faciofs/resolve"
)

const token = "FAKE-sk-test-0001-xyz" // a fake value

var known = []resolve.Known{{Name: "TOKEN", Value: []byte(token)}}

// syncBuffer is safe for the writer goroutine and the test reading it.
type syncBuffer = testkit.SyncBuffer

func forms(v string) []string {
	b := []byte(v)
	return []string{v, base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b),
		base64.URLEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b),
		hex.EncodeToString(b), strings.ToUpper(hex.EncodeToString(b))}
}

func noLeak(t *testing.T, where, out string) {
	t.Helper()
	for i, f := range forms(token) {
		if strings.Contains(out, f) {
			t.Errorf("%s holds the value (form #%d)", where, i)
		}
	}
}

// sh runs a shell script with TOKEN in its environment.
func sh(t *testing.T, ctx context.Context, script string, mod func(*Spec)) (Result, string, string) {
	t.Helper()
	var out, errb syncBuffer
	s := Spec{
		Path: "sh", Args: []string{"-c", script},
		Environ: os.Environ(), Env: []string{"TOKEN=" + token},
		Stdout: &out, Stderr: &errb, Known: known,
	}
	if mod != nil {
		mod(&s)
	}
	res, err := Run(ctx, s)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	noLeak(t, "stdout", out.String())
	noLeak(t, "stderr", errb.String())
	return res, out.String(), errb.String()
}

func need(t *testing.T, tools ...string) {
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
}

func TestForms(t *testing.T) {
	need(t, "base64", "xxd", "od", "tr")
	cases := []struct{ script, want string }{
		{`printf 'token is %s!\n' "$TOKEN"`, "token is [REDACTED:TOKEN]!\n"},
		{`printf '%s' "$TOKEN" | base64`, "[REDACTED:TOKEN]\n"},
		{`printf 'abc%s' "$TOKEN" | base64`, "YWJj[REDACTED:TOKEN]\n"},
		{`printf '%s' "$TOKEN" | xxd -p`, "[REDACTED:TOKEN]\n"},
		{`printf '%s' "$TOKEN" | od -An -v -tx1 | tr -d ' \n'`, "[REDACTED:TOKEN]"},
		{`printf '%s' "$TOKEN" | xxd -p -u`, "[REDACTED:TOKEN]\n"},
		{`printf 'https://u:%s@h/' "$TOKEN"`, "https://u:[REDACTED:TOKEN]@h/"},
		{`printf '%s' "$TOKEN" >&2; echo out`, "out\n"},
	}
	for _, c := range cases {
		res, out, errb := sh(t, context.Background(), c.script, nil)
		if out != c.want || res.ExitCode != 0 || res.Redactions != 1 {
			t.Errorf("%s: stdout %q (want %q), exit %d, redactions %d, stderr %q", c.script, out, c.want, res.ExitCode, res.Redactions, errb)
		}
	}
}

// TestByteAtATime: the child prints the value and its base64 one byte per
// write, pausing between them, amid binary noise.
func TestByteAtATime(t *testing.T) {
	need(t, "base64", "head")
	script := `head -c 300 /dev/urandom > /tmp/.noise.$$; cat /tmp/.noise.$$
v="$TOKEN $(printf '%s' "$TOKEN" | base64)"
i=0; while [ $i -lt ${#v} ]; do printf '%s' "$(printf '%s' "$v" | cut -c$((i+1)))"; sleep 0.01; i=$((i+1)); done
cat /tmp/.noise.$$; rm -f /tmp/.noise.$$`
	res, out, _ := sh(t, context.Background(), script, nil)
	if res.ExitCode != 0 || res.Redactions != 2 || strings.Count(out, "[REDACTED:TOKEN]") != 2 {
		t.Fatalf("exit %d, %d redactions, output %q", res.ExitCode, res.Redactions, out)
	}
	i := strings.Index(out, "[REDACTED:TOKEN] [REDACTED:TOKEN]")
	if i != 300 || out[:300] != out[len(out)-300:] {
		t.Errorf("the noise around the values changed (marker at %d, len %d)", i, len(out))
	}
}

func TestStdinAndSameWriter(t *testing.T) {
	var both syncBuffer
	res, err := Run(context.Background(), Spec{
		Path: "sh", Args: []string{"-c", `cat; printf '%s' "$TOKEN" >&2`},
		Environ: os.Environ(), Env: []string{"TOKEN=" + token},
		Stdin:  strings.NewReader("in:" + token + "\n"),
		Stdout: &both, Stderr: &both, Known: known,
	})
	if err != nil || res.ExitCode != 0 {
		t.Fatal(res, err)
	}
	if got := both.String(); got != "in:[REDACTED:TOKEN]\n[REDACTED:TOKEN]" || res.Redactions != 2 {
		t.Errorf("output %q, %d redactions", got, res.Redactions)
	}
}

func TestExitCodesAndSignals(t *testing.T) {
	res, _, _ := sh(t, context.Background(), "exit 7", nil)
	if res.ExitCode != 7 || res.Signal != 0 {
		t.Errorf("exit 7: %+v", res)
	}
	res, _, _ = sh(t, context.Background(), "kill -KILL $$", nil)
	if res.Signal != syscall.SIGKILL || res.ExitCode != 128+9 {
		t.Errorf("killed: %+v", res)
	}

	// Forwarded signal: the child traps SIGINT and says so. "ready" is
	// padded past the redactor's hold-back (see Run's doc).
	sigs := make(chan os.Signal, 1)
	done := make(chan struct{})
	var out syncBuffer
	go func() {
		defer close(done)
		res, err := Run(context.Background(), Spec{
			Path: "sh", Args: []string{"-c", `trap 'echo got INT; exit 3' INT; printf 'ready%0500d\n' 0; while :; do sleep 0.05; done`},
			Environ: os.Environ(), Stdout: &out, Known: known, Signals: sigs,
		})
		if err != nil || res.ExitCode != 3 {
			t.Errorf("after SIGINT: %+v %v", res, err)
		}
	}()
	waitFor(t, func() bool { return strings.Contains(out.String(), "ready") })
	sigs <- syscall.SIGINT
	<-done
	if !strings.Contains(out.String(), "got INT") {
		t.Errorf("output %q", out.String())
	}

	// ctx cancelled: SIGTERM to the group. It is cancelled only once the
	// child has started: cancelled before, Run would not start it at all.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	res, _, _ = sh(t, ctx, "sleep 30", func(s *Spec) {
		s.Started = func(int) {
			go func() { time.Sleep(100 * time.Millisecond); cancel() }()
		}
	})
	if res.Signal != syscall.SIGTERM || time.Since(start) > 10*time.Second {
		t.Errorf("cancelled: %+v after %v", res, time.Since(start))
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("timed out")
}

func TestNotFound(t *testing.T) {
	_, err := Run(context.Background(), Spec{Path: "no-such-command-faciofs", Environ: []string{"PATH=/usr/bin:/bin"}})
	if !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("err %v", err)
	}
}

type countWriter struct {
	n    int64
	tail []byte
}

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	c.tail = append(c.tail, p...)
	if len(c.tail) > 4096 {
		c.tail = c.tail[len(c.tail)-4096:]
	}
	return len(p), nil
}

// TestFlood: 50 MB of output, with the value at its end, for throughput.
func TestFlood(t *testing.T) {
	need(t, "head", "base64")
	var cw countWriter
	start := time.Now()
	res, err := Run(context.Background(), Spec{
		Path: "sh", Args: []string{"-c", `head -c 37500000 /dev/zero | base64 -w 100; printf '%s\n' "$TOKEN"`},
		Environ: os.Environ(), Env: []string{"TOKEN=" + token}, Stdout: &cw, Known: known,
	})
	d := time.Since(start)
	if err != nil || res.ExitCode != 0 {
		t.Fatal(res, err)
	}
	if cw.n < 50_000_000 || !bytes.HasSuffix(cw.tail, []byte("\n[REDACTED:TOKEN]\n")) || res.Redactions != 1 {
		t.Errorf("%d bytes, %d redactions, tail %q", cw.n, res.Redactions, cw.tail[len(cw.tail)-30:])
	}
	t.Logf("%d bytes in %v: %.0f MB/s end to end", cw.n, d, float64(cw.n)/d.Seconds()/1e6)
}
