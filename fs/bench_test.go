package fs_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
)

const seqSize = 64 << 20

// benchTargets gives a directory per system under test: the backing
// filesystem itself, go-fuse's loopback over it, and faciofs over it, so
// that one run yields comparable ratios.
func benchTargets(b *testing.B) map[string]string {
	tm := mountFS(b, nil, fakeValues)
	loopDir := filepath.Join(worldDir(b), "loop")
	if err := os.Mkdir(loopDir, 0o755); err != nil {
		b.Fatal(err)
	}
	loopRoot, err := gofs.NewLoopbackRoot(tm.backing)
	if err != nil {
		b.Fatal(err)
	}
	sec := time.Second
	srv, err := gofs.Mount(loopDir, loopRoot, &gofs.Options{EntryTimeout: &sec, AttrTimeout: &sec})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Unmount() })
	return map[string]string{"native": tm.backing, "loopback": loopDir, "faciofs": tm.mnt}
}

func BenchmarkSeqWrite(b *testing.B) {
	targets := benchTargets(b)
	buf := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	for _, name := range []string{"native", "loopback", "faciofs"} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(seqSize)
			p := filepath.Join(targets[name], "seq-"+name)
			for b.Loop() {
				f, err := os.Create(p)
				if err != nil {
					b.Fatal(err)
				}
				for w := 0; w < seqSize; w += len(buf) {
					if _, err := f.Write(buf); err != nil {
						b.Fatal(err)
					}
				}
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
		})
	}
}

func BenchmarkSeqRead(b *testing.B) {
	targets := benchTargets(b)
	p := filepath.Join(targets["native"], "seq")
	if err := os.WriteFile(p, bytes.Repeat([]byte("x"), seqSize), 0o644); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for _, name := range []string{"native", "loopback", "faciofs"} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(seqSize)
			for b.Loop() {
				f, err := os.Open(filepath.Join(targets[name], "seq"))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.CopyBuffer(io.Discard, onlyReader{f}, buf); err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
		})
	}
}

// onlyReader hides WriterTo so io.CopyBuffer really reads.
type onlyReader struct{ io.Reader }

// templated4K is a realistic 4 KiB .env with five placeholders.
func templated4K() []byte {
	var sb strings.Builder
	refs := []string{"OPENAI_API_KEY", "API_TOKEN", "OPENAI_API_KEY|json", "API_TOKEN|url", "OPENAI_API_KEY|base64"}
	for i, r := range refs {
		sb.WriteString("SETTING_WITH_CREDENTIAL_" + string(rune('A'+i)) + "=${credentials." + r + "}\n")
	}
	for sb.Len() < 4096 {
		sb.WriteString("# an ordinary configuration line that holds no credential at all\n")
	}
	return []byte(sb.String()[:4096])
}

// BenchmarkOpenReadClose4K measures the hot path of a config file read:
// open, read 4 KiB, close, by a consumer of a templated file, by the agent
// of the same file, and of a plain file. It reports median and p99.
func BenchmarkOpenReadClose4K(b *testing.B) {
	everyone := &uidPolicy{consumers: map[uint32]bool{0: true}}
	cases := []struct {
		name   string
		policy *uidPolicy
		data   []byte
	}{
		{"consumer-templated", everyone, templated4K()},
		{"agent-templated", nil, templated4K()},
		{"plain", nil, bytes.Repeat([]byte("p"), 4096)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			tm := mountFS(b, c.policy, fakeValues)
			if err := os.WriteFile(filepath.Join(tm.backing, "cfg.env"), c.data, 0o644); err != nil {
				b.Fatal(err)
			}
			p := filepath.Join(tm.mnt, "cfg.env")
			buf := make([]byte, 8192)
			var lat []time.Duration
			for b.Loop() {
				t0 := time.Now()
				fd, err := syscall.Open(p, syscall.O_RDONLY, 0)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := syscall.Read(fd, buf); err != nil {
					b.Fatal(err)
				}
				syscall.Close(fd)
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "median-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
		})
	}
}
