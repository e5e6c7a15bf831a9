package control

import (
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/faciofs/faciofs/audit"
	"github.com/faciofs/faciofs/redact"
)

// Scan limits: the largest file read, and the most hits reported for one
// file (the answer must fit in MaxMessage).
const (
	ScanMaxFile    = 256 << 20
	scanMaxPerFile = 1000
)

// scan looks for every value and encoded form in the files the caller
// opened and passed: the caller's own permissions decided what could be
// opened, so the daemon reads nothing the caller could not. One audit
// record per request names the credentials found.
func (e *Engine) scan(actor audit.Actor, req *Request, files []*os.File) (*ScanResult, error) {
	defer req.wipe()
	if e.Exec == nil {
		return nil, errorf(KindProblem, "scan through the control socket needs a running mount")
	}
	if len(files) == 0 {
		return nil, errorf(KindUsage, "scan: send the files to scan as descriptors")
	}
	m := e.Exec.Redactor()
	res := &ScanResult{Hits: []ScanHit{}, Skipped: m.Skipped()}
	var names []string
	for i, f := range files {
		hits, err := scanFile(m, f)
		for j := range hits {
			hits[j].File = i
			if !slices.Contains(names, hits[j].Name) {
				names = append(names, hits[j].Name)
			}
		}
		res.Hits = append(res.Hits, hits...)
		if err != nil {
			if res.Errors == nil {
				res.Errors = map[int]string{}
			}
			res.Errors[i] = err.Error()
		}
	}
	slices.Sort(names)
	outcome := audit.OutcomeOK
	if len(res.Hits) > 0 {
		outcome = audit.OutcomeDenied // found where no value should be
	}
	if err := e.audit(actor, nil, audit.Record{Event: audit.EventScan, Outcome: outcome, Credentials: names,
		Detail: fmt.Sprintf("%d files, %d hits", len(files), len(res.Hits))}); err != nil {
		return nil, fmt.Errorf("scan refused: the audit log cannot record it: %v", err)
	}
	return res, nil
}

// scanFile reads a regular file from its start (whatever the descriptor's
// offset) and lists what it holds.
func scanFile(m *redact.Matcher, f *os.File) ([]ScanHit, error) {
	fi, err := f.Stat()
	switch {
	case err != nil:
		return nil, fmt.Errorf("stat: %v", err)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("not a regular file")
	case fi.Size() > ScanMaxFile:
		return nil, fmt.Errorf("skipped: larger than %d MiB", ScanMaxFile>>20)
	}
	var hits []ScanHit
	err = m.Scan(io.NewSectionReader(f, 0, ScanMaxFile), func(h redact.Hit) bool {
		if n := len(hits); n > 0 && hits[n-1].Line == h.Line && hits[n-1].Name == h.Name && hits[n-1].Form == h.Form {
			return true // the same form twice on a line is one report
		}
		hits = append(hits, ScanHit{Line: h.Line, Name: h.Name, Form: h.Form})
		return len(hits) < scanMaxPerFile
	})
	return hits, err
}
