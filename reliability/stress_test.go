package reliability

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestStress: a mixed workload for 20 s (FACIOFS_STRESS=long: 5 min) on
// a mount served by a -race build of the daemon: fio with verification
// (when installed; .ci/run installs it), two Go writer/verifiers, two
// consumers and two agents reading templated files in loops. No
// corruption, no leak to the agents, no fd or thread growth in the daemon.
func TestStress(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.start()
	dur := 20
	if long() {
		dur = 300
	}
	tmpl := map[string][2]string{
		".env":     {"A=" + ph("REL_A") + "\nB=" + ph("REL_B") + "\n", "A=" + creds["REL_A"] + "\nB=" + creds["REL_B"] + "\n"},
		"mcp.json": {`{"k":"` + ph("REL_JSON|json") + `"}`, `{"k":"` + strings.ReplaceAll(strings.ReplaceAll(creds["REL_JSON"], `\`, `\\`), `"`, `\"`) + `"}`},
	}
	for name, c := range tmpl {
		must(t, os.WriteFile(filepath.Join(e.mnt, name), []byte(c[0]), 0o644))
		must(t, os.WriteFile(filepath.Join(e.exp, name+".res"), []byte(c[1]), 0o600))
		must(t, os.WriteFile(filepath.Join(e.dir, name+".raw"), []byte(c[0]), 0o644))
	}
	must(t, os.Mkdir(filepath.Join(e.mnt, "rw"), 0o777))
	must(t, os.Mkdir(filepath.Join(e.mnt, "fio"), 0o777))

	type proc struct {
		name string
		cmd  *exec.Cmd
		out  *bytes.Buffer
	}
	startLoad := func(secs int, withFio bool) []proc {
		var ps []proc
		add := func(name string, c *exec.Cmd) {
			var out bytes.Buffer
			c.Stdout, c.Stderr = &out, &out
			must(t, c.Start())
			ps = append(ps, proc{name, c, &out})
		}
		s := strconv.Itoa(secs)
		for i, name := range []string{".env", "mcp.json"} {
			p := filepath.Join(e.mnt, name)
			add(fmt.Sprintf("consumer%d", i), helper(context.Background(), asConsumer, "readloop", p, filepath.Join(e.exp, name+".res"), s))
			add(fmt.Sprintf("agent%d", i), helper(context.Background(), asAgent, "readloop", p, filepath.Join(e.dir, name+".raw"), s))
		}
		for i := range 2 {
			add(fmt.Sprintf("rw%d", i), helper(context.Background(), asRoot, "rw", filepath.Join(e.mnt, "rw"), s, strconv.Itoa(i+10)))
		}
		if fio, err := exec.LookPath("fio"); withFio && err == nil {
			add("fio", exec.Command(fio, "--name=verify", "--directory="+filepath.Join(e.mnt, "fio"),
				"--size=16m", "--numjobs=2", "--rw=randrw", "--bsrange=4k-64k", "--ioengine=psync",
				"--verify=crc32c", "--verify_fatal=1", "--do_verify=1", "--fsync=16",
				"--time_based", "--runtime="+s, "--group_reporting",
				// fio saves verify state in its working directory, which
				// would be this package's source directory.
				"--verify_state_save=0"))
		} else if withFio {
			t.Logf("fio is not installed: the Go writer/verifiers only")
		}
		return ps
	}
	wait := func(ps []proc, secs int) {
		for _, p := range ps {
			w := make(chan error, 1)
			go func() { w <- p.cmd.Wait() }()
			var err error
			select {
			case err = <-w:
			case <-time.After(time.Duration(secs)*time.Second + 60*time.Second):
				_ = p.cmd.Process.Kill()
				err = <-w
				t.Errorf("%s hung", p.name)
			}
			out := p.out.String()
			noLeak(t, p.name+" output", []byte(out))
			switch {
			case strings.HasPrefix(p.name, "fio"):
				if err != nil || strings.Contains(out, "verify:") && strings.Contains(out, "bad") {
					t.Errorf("fio: %v: %s", err, lastLines(out, 15))
				} else {
					t.Logf("fio: %s", grepLines(out, "READ:", "WRITE:"))
				}
			case strings.HasPrefix(p.name, "rw"):
				if err != nil {
					t.Errorf("%s: %v: %s", p.name, err, lastLines(out, 5))
				} else {
					t.Logf("%s: %s", p.name, strings.TrimSpace(out))
				}
			default:
				var reads, bad, errs int
				fmt.Sscanf(out, "reads=%d bad=%d errs=%d", &reads, &bad, &errs)
				agentLeak := strings.HasPrefix(p.name, "agent") && !strings.Contains(out, `leak=""`)
				if err != nil || reads == 0 || bad != 0 || errs != 0 || agentLeak {
					t.Errorf("%s: %v: %s", p.name, err, redact(out))
				} else {
					t.Logf("%s: %s", p.name, strings.TrimSpace(out))
				}
			}
		}
	}

	// Warm up with the same mix, fio included (the Go runtime keeps the
	// threads it once needed, so a lighter warm-up would count the
	// threads fio's blocking I/O needs as growth), then measure.
	wait(startLoad(5, true), 5)
	time.Sleep(time.Second)
	fd0, th0 := fdCount(d.pid()), threads(d.pid())
	wait(startLoad(dur, true), dur)
	time.Sleep(2 * time.Second)
	fd1, th1 := fdCount(d.pid()), threads(d.pid())
	t.Logf("daemon after warm-up: %d fds, %d threads; after %d s of load: %d fds, %d threads", fd0, th0, dur, fd1, th1)
	if fd1 > fd0+4 {
		t.Errorf("daemon fds grew from %d to %d over the stress run", fd0, fd1)
	}
	if th1 > th0+max(8, th0/2) {
		t.Errorf("daemon threads grew from %d to %d over the stress run", th0, th1)
	}
	// Everything on the mount matches its backing file; nothing resolved
	// reached BACKING (the env cleanup scans it).
	for name, c := range tmpl {
		if b, _ := os.ReadFile(filepath.Join(e.backing, name)); string(b) != c[0] {
			t.Errorf("backing %s changed under stress", name)
		}
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return redact(strings.Join(l, "\n"))
}

func grepLines(s string, subs ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, sub := range subs {
			if strings.Contains(l, sub) {
				out = append(out, strings.TrimSpace(l))
			}
		}
	}
	return strings.Join(out, "; ")
}
