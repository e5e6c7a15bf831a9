package reliability

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// runRole is the test binary run as a helper program. Roles print short
// summaries, never file contents (except `cat`), so that a leak check of
// their output checks what they saw.
func runRole(role string, args []string) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, format+"\n", a...)
		return 1
	}
	switch role {
	case "cat": // PATH: the file's bytes on stdout
		b, err := os.ReadFile(args[0])
		os.Stdout.Write(b)
		if err != nil {
			return fail("%v", err)
		}
		return 0
	case "sha": // PATH: "LEN SHA256" of the file, read in 1 MiB chunks
		f, err := os.Open(args[0])
		if err != nil {
			return fail("%v", err)
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.CopyBuffer(h, f, make([]byte, 1<<20))
		if err != nil {
			return fail("%v", err)
		}
		fmt.Printf("%d %s\n", n, hex.EncodeToString(h.Sum(nil)))
		return 0
	case "chunks": // PATH EXPECTED MAXCHUNK
		return roleChunks(args[0], args[1], atoi(args[2]))
	case "readloop": // PATH EXPECTED SECONDS
		return roleReadLoop(args[0], args[1], time.Duration(atoi(args[2]))*time.Second)
	case "writer": // DIR RECORDFILE PASTE(0|1)
		return roleWriter(args[0], args[1], args[2] == "1")
	case "rw": // DIR SECONDS SEED
		return roleRW(args[0], time.Duration(atoi(args[1]))*time.Second, uint64(atoi(args[2])))
	}
	return fail("unknown role %q", role)
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

// roleChunks reads PATH with pread from every offset in chunks of every
// size 1..max and compares with EXPECTED[offset:].
func roleChunks(path, expectedFile string, max int) int {
	want, err := os.ReadFile(expectedFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer f.Close()
	reads, bad := 0, 0
	buf := make([]byte, max)
	var got []byte
	for c := 1; c <= max; c++ {
		for off := 0; off <= len(want); off++ {
			got = got[:0]
			for pos := off; ; {
				n, err := f.ReadAt(buf[:c], int64(pos))
				reads++
				got = append(got, buf[:n]...)
				pos += n
				if err == io.EOF || n == 0 {
					break
				}
				if err != nil {
					fmt.Fprintf(os.Stderr, "pread(%d, %d): %v\n", pos, c, err)
					return 1
				}
			}
			if !bytes.Equal(got, want[off:]) {
				if bad < 3 {
					fmt.Fprintf(os.Stderr, "chunk %d offset %d: %d bytes differ from the expected %d\n", c, off, len(got), len(want)-off)
				}
				bad++
			}
		}
	}
	fmt.Printf("reads=%d bad=%d leak=%q\n", reads, bad, "")
	if bad > 0 {
		return 1
	}
	return 0
}

// roleReadLoop reads PATH in a loop for d, comparing each read with
// EXPECTED; it reports counts and whether any read held a value.
func roleReadLoop(path, expectedFile string, d time.Duration) int {
	want, err := os.ReadFile(expectedFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	reads, bad, errs := 0, 0, 0
	leak := ""
	var firstErr string
	for end := time.Now().Add(d); time.Now().Before(end); {
		b, err := os.ReadFile(path)
		reads++
		switch {
		case err != nil:
			errs++
			if firstErr == "" {
				firstErr = err.Error()
			}
		case !bytes.Equal(b, want):
			bad++
		}
		if l := findLeak(b); l != "" && leak == "" {
			leak = l
		}
	}
	fmt.Printf("reads=%d bad=%d errs=%d leak=%q firsterr=%q\n", reads, bad, errs, leak, firstErr)
	return 0
}

// writerContent is file seq of a writer: deterministic, 1..48 KiB.
func writerContent(dir string, seq int, paste bool) []byte {
	r := rand.New(rand.NewPCG(uint64(seq), uint64(len(dir))))
	n := 1 + r.IntN(48<<10)
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + r.IntN(26))
	}
	s := fmt.Sprintf("%s#%d\n", filepath.Base(dir), seq) + string(b) + "\n"
	if paste {
		s = "TOKEN=" + creds["REL_A"] + "\n" + s
	}
	return []byte(s)
}

// logLine is line k of a writer's append-only log.
func logLine(k int) string { return fmt.Sprintf("line %08d %s\n", k, strings.Repeat("x", k%97)) }

// roleWriter writes new files and appends to a log in DIR until killed or
// an error; after each fsync returns it records what is durable in
// RECORDFILE (outside the mount), fsynced too.
func roleWriter(dir, recordFile string, paste bool) int {
	rec, err := os.OpenFile(recordFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	logf, err := os.OpenFile(filepath.Join(dir, "log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var keep []*os.File // paste writer: some files stay open, unscrubbed
	defer func() {
		// Only reached if the daemon outlives the writer; the point is
		// that the files are still open when it is killed.
		for _, f := range keep {
			f.Close()
		}
	}()
	for seq := 0; ; seq++ {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("f%06d", seq)), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 0
		}
		if _, err := f.Write(writerContent(dir, seq, paste)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 0
		}
		if err := f.Sync(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 0
		}
		if paste && seq%3 == 0 {
			keep = append(keep, f)
		} else if err := f.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 0
		}
		if _, err := logf.WriteString(logLine(seq)); err != nil {
			return 0
		}
		if err := logf.Sync(); err != nil {
			return 0
		}
		fmt.Fprintf(rec, "%d\n", seq)
		if err := rec.Sync(); err != nil {
			return 1
		}
	}
}

// roleRW is a writer/verifier: it keeps a few files, applies random
// writes, appends and truncations, fsyncs, and reads each back, comparing
// with what it holds in memory.
func roleRW(dir string, d time.Duration, seed uint64) int {
	r := rand.New(rand.NewPCG(seed, 7))
	dir = filepath.Join(dir, fmt.Sprintf("seed%d", seed)) // one directory per writer
	// The model starts empty, so must the files: an earlier run of the same
	// seed (the warm-up) leaves its files behind.
	if err := os.RemoveAll(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	const files = 4
	model := make([][]byte, files)
	ops, bad := 0, 0
	for end := time.Now().Add(d); time.Now().Before(end); ops++ {
		i := r.IntN(files)
		p := filepath.Join(dir, fmt.Sprintf("rw%d", i))
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		switch op := r.IntN(10); {
		case op < 7: // pwrite somewhere (may extend)
			off := r.IntN(len(model[i]) + 1)
			n := 1 + r.IntN(256<<10)
			b := make([]byte, n)
			for k := range b {
				b[k] = byte(r.Uint32())
			}
			if _, err := f.WriteAt(b, int64(off)); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			if off+n > len(model[i]) {
				model[i] = append(model[i], make([]byte, off+n-len(model[i]))...)
			}
			copy(model[i][off:], b)
		case op < 9: // truncate
			n := r.IntN(len(model[i]) + 1)
			if err := f.Truncate(int64(n)); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			model[i] = model[i][:n]
		default: // start over
			if err := f.Truncate(0); err != nil {
				return 1
			}
			model[i] = model[i][:0]
		}
		if err := f.Sync(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		f.Close()
		got, err := os.ReadFile(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if !bytes.Equal(got, model[i]) {
			bad++
			fmt.Fprintf(os.Stderr, "rw%d after op %d: read %d bytes, want %d (first difference at %d)\n", i, ops, len(got), len(model[i]), firstDiff(got, model[i]))
		}
	}
	fmt.Printf("ops=%d bad=%d\n", ops, bad)
	if bad > 0 {
		return 1
	}
	return 0
}

func firstDiff(a, b []byte) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
