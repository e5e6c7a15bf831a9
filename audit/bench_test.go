package audit

import (
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAppend measures Append (waits for its batch's write and fsync)
// with many concurrent callers, as a busy mount's FUSE readers would be,
// and reports appends per second and the mean latency one caller sees.
func BenchmarkAppend(b *testing.B) {
	benchmarkAppend(b, 0)
}

// BenchmarkAppendDaemon is Append as the mount's daemon uses it: written
// when write(2) takes the batch, fsynced every 100 ms. Its latency is what
// a resolve record adds to a consumer's open.
func BenchmarkAppendDaemon(b *testing.B) {
	benchmarkAppend(b, 100*time.Millisecond)
}

func benchmarkAppend(b *testing.B, syncEvery time.Duration) {
	for _, callers := range []int{1, 16, 256} {
		b.Run(map[int]string{1: "callers=1", 16: "callers=16", 256: "callers=256"}[callers], func(b *testing.B) {
			dir := filepath.Join(b.TempDir(), "audit")
			l, err := Open(dir, Options{Key: testKey, SyncInterval: syncEvery})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			r := rec(EventResolve, 1)
			var next atomic.Int64
			var lat atomic.Int64
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						t0 := time.Now()
						if err := l.Append(r); err != nil {
							b.Error(err)
							return
						}
						lat.Add(int64(time.Since(t0)))
					}
				}()
			}
			wg.Wait()
			el := time.Since(start)
			b.ReportMetric(float64(b.N)/el.Seconds(), "appends/s")
			b.ReportMetric(float64(lat.Load())/float64(b.N)/1e3, "µs/append-latency")
		})
	}
}

// BenchmarkPost measures queued appends (Post): the rate the writer
// sustains when nobody waits for the disk.
func BenchmarkPost(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "audit")
	l, err := Open(dir, Options{Key: testKey})
	if err != nil {
		b.Fatal(err)
	}
	r := rec(EventRawServed, 1)
	start := time.Now()
	for b.Loop() {
		if err := l.Post(r); err != nil {
			b.Fatal(err)
		}
	}
	l.Close() // waits for the queue to reach the disk
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
}

var query1M struct {
	once sync.Once
	dir  string
	root string
	err  error
}

// BenchmarkQuery1M scans a log of 1 000 000 records (built once, in
// 16 MiB segments) with a selective filter and with none.
func BenchmarkQuery1M(b *testing.B) {
	query1M.once.Do(func() {
		dir, err := os.MkdirTemp("", "audit-bench-1m-")
		query1M.root = dir // removed by TestMain
		if err != nil {
			query1M.err = err
			return
		}
		query1M.dir = filepath.Join(dir, "audit")
		l, err := Open(query1M.dir, Options{Key: testKey, Queue: 1 << 16})
		if err != nil {
			query1M.err = err
			return
		}
		base := time.Now().Add(-1000 * time.Hour)
		for i := range 1_000_000 {
			r := rec([]Event{EventResolve, EventRawServed, EventDenied, EventMissing}[i%4], i)
			r.Time = base.Add(time.Duration(i) * 3 * time.Second)
			if err := l.Post(r); err != nil {
				query1M.err = err
				return
			}
		}
		query1M.err = l.Close()
	})
	if query1M.err != nil {
		b.Fatal(query1M.err)
	}
	for _, c := range []struct {
		name string
		f    Filter
	}{
		{"all", Filter{}},
		{"event+key+since", Filter{Event: EventDenied, Key: "K3", Since: time.Now().Add(-500 * time.Hour)}},
		{"path", Filter{Path: "proj3/*.json"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				n := 0
				if err := Scan(query1M.dir, c.f, func([]byte) error { n++; return nil }); err != nil {
					b.Fatal(err)
				}
				if n == 0 {
					b.Fatal("no match")
				}
			}
		})
	}
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			r, err := Verify(query1M.dir, VerifyOptions{Key: testKey})
			if err != nil || !r.OK() || r.Records != 1_000_000 {
				b.Fatalf("verify: %v %v", err, r)
			}
		}
	})
}
