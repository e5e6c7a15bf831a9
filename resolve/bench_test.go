package resolve

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// envJSON4KiB is a realistic templated config: a .env block and an MCP JSON
// config, 5 placeholders, padded with ordinary settings to 4 KiB.
func envJSON4KiB() []byte {
	var b bytes.Buffer
	b.WriteString("# service config\nOPENAI_API_KEY=${credentials.OPENAI_API_KEY}\n" +
		"DATABASE_URL=postgres://app:${credentials.DB_PASSWORD|url}@db:5432/app\n" +
		"EXPORTED=${credentials.DB_PASSWORD|shell}\n")
	b.WriteString(`{"mcpServers":{"search":{"command":"npx","args":["-y","server"],"env":{` +
		`"API_KEY":"${credentials.A|json}","TOKEN":"${credentials.B|json}"}}}}` + "\n")
	for i := 0; b.Len() < 4096; i++ {
		fmt.Fprintf(&b, "SETTING_%03d=value-%d-with-some-ordinary-text $HOME ${PATH}\n", i, i*7919)
	}
	return b.Bytes()[:4096]
}

func BenchmarkRender4KiB5Placeholders(b *testing.B) {
	src := envJSON4KiB()
	if n := countRefs(src); n != 5 {
		b.Fatalf("fixture has %d placeholders", n)
	}
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		Render(src, fakeLookup)
	}
}

func BenchmarkRenderPlain4KiB(b *testing.B) {
	src := bytes.ReplaceAll(envJSON4KiB(), []byte("${credentials."), []byte("${CREDENTIALS."))
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		Render(src, fakeLookup)
	}
}

func BenchmarkReverse1MiB20Values(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	var known []Known
	for i := range 20 {
		v := fmt.Appendf(nil, "FAKE-sk-test-%02d-", i)
		for range 32 {
			v = append(v, "abcdefghijklmnopqrstuvwxyz0123456789/+="[rng.IntN(39)])
		}
		known = append(known, Known{fmt.Sprintf("KEY_%02d", i), v})
	}
	m := NewMatcher(known)
	// Mostly text and some binary, with 100 values spread through it.
	src := make([]byte, 0, 1<<20)
	for len(src) < 1<<20 {
		if rng.IntN(100) == 0 {
			src = append(src, known[rng.IntN(20)].Value...)
		} else if rng.IntN(4) == 0 {
			src = append(src, byte(rng.IntN(256)))
		} else {
			src = append(src, "the quick brown fox jumps over the lazy dog 0123456789 FAKE-sk "[rng.IntN(63)])
		}
	}
	src = src[:1<<20]
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := m.Reverse(src); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkScanNoPlaceholders1MiB(b *testing.B) {
	src := bytes.Repeat([]byte("KEY=${HOME}/x $PATH {credentials.A} plain text line\n"), (1<<20)/52+1)[:1<<20]
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		Scan(src, func(Ref) bool { b.Fatal("ref found"); return false })
	}
}

func BenchmarkNewMatcher20Values(b *testing.B) {
	var known []Known
	for i := range 20 {
		known = append(known, Known{fmt.Sprintf("KEY_%02d", i), fmt.Appendf(nil, "FAKE-sk-test-%02d-0123456789abcdefghijklmnopqrstuv", i)})
	}
	b.ReportAllocs()
	for b.Loop() {
		NewMatcher(known)
	}
}

func countRefs(src []byte) int {
	n := 0
	Scan(src, func(r Ref) bool {
		if r.Kind == Placeholder {
			n++
		}
		return true
	})
	return n
}

// BenchmarkReverseClean1MiB is the common case of a scrub: a file written
// through the mount that holds no value at all.
func BenchmarkReverseClean1MiB(b *testing.B) {
	var known []Known
	for i := range 20 {
		known = append(known, Known{fmt.Sprintf("KEY_%02d", i), fmt.Appendf(nil, "FAKE-sk-test-%02d-abcdefghijklmnopqrstuvwxyz0123", i)})
	}
	m := NewMatcher(known)
	rng := rand.New(rand.NewPCG(3, 4))
	src := make([]byte, 1<<20)
	for i := range src {
		if rng.IntN(4) == 0 {
			src[i] = byte(rng.IntN(256))
		} else {
			src[i] = "the quick brown fox jumps over the lazy dog 0123456789 FAKE-sk "[rng.IntN(63)]
		}
	}
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if _, names, err := m.Reverse(src); err != nil || len(names) != 0 {
			b.Fatal(names, err)
		}
	}
}
