// Command readloop is the benchmark's reader: it opens, reads to the end and
// closes one file in a loop, and prints the per-open latency (median, p99) or
// the throughput of several concurrent readers as one JSON line. bench/run.sh
// builds it once and copies it to a second path that the benchmark policy
// names as a consumer, so the same code runs as the agent and as a consumer.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type result struct {
	Mode      string  `json:"mode"`
	N         int     `json:"n"`
	Bytes     int     `json:"bytes"` // bytes read by one open+read+close
	MedianNs  int64   `json:"median_ns,omitempty"`
	P99Ns     int64   `json:"p99_ns,omitempty"`
	Readers   int     `json:"readers,omitempty"`
	OpsPerSec float64 `json:"ops_per_s,omitempty"`
}

// readOnce opens path, reads it to EOF into buf and closes it.
func readOnce(path string, buf []byte) (int, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	total := 0
	for {
		n, err := syscall.Read(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			syscall.Close(fd)
			return total, err
		}
		if n == 0 {
			break
		}
		total += n
	}
	return total, syscall.Close(fd)
}

func main() {
	n := flag.Int("n", 5000, "measured iterations (latency mode)")
	warm := flag.Int("warm", 200, "unmeasured iterations first")
	readers := flag.Int("c", 0, "concurrent readers: throughput mode when > 0")
	dur := flag.Duration("d", 2*time.Second, "duration of throughput mode")
	cat := flag.Bool("cat", false, "print the file once and exit")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: readloop [-n N] [-c READERS -d DUR] [-cat] FILE")
		os.Exit(2)
	}
	path := flag.Arg(0)
	if *cat {
		b, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Stdout.Write(b)
		return
	}
	buf := make([]byte, 64<<10)
	size := 0
	for i := 0; i < *warm; i++ {
		s, err := readOnce(path, buf)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		size = s
	}
	var r result
	if *readers > 0 {
		r = throughput(path, *readers, *dur)
	} else {
		lat := make([]int64, *n)
		for i := range lat {
			t0 := time.Now()
			s, err := readOnce(path, buf)
			lat[i] = int64(time.Since(t0))
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			size = s
		}
		slices.Sort(lat)
		r = result{Mode: "latency", N: *n, MedianNs: lat[len(lat)/2], P99Ns: lat[len(lat)*99/100]}
	}
	r.Bytes = size
	json.NewEncoder(os.Stdout).Encode(r)
}

func throughput(path string, readers int, dur time.Duration) result {
	var ops atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(dur)
	for i := 0; i < readers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64<<10)
			for time.Now().Before(deadline) {
				if _, err := readOnce(path, buf); err != nil {
					failed.Store(err)
					return
				}
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	el := time.Since(start).Seconds()
	return result{Mode: "throughput", N: int(ops.Load()), Readers: readers, OpsPerSec: float64(ops.Load()) / el}
}
