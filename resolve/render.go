package resolve

import "slices"

// Status is a Lookup's answer for one name.
type Status uint8

const (
	// Resolved: the caller may receive the value.
	Resolved Status = iota
	// Missing: no credential has this name.
	Missing
	// Denied: the credential exists but the caller's rule does not cover it.
	Denied
)

func (s Status) String() string {
	switch s {
	case Resolved:
		return "resolved"
	case Missing:
		return "missing"
	case Denied:
		return "denied"
	}
	return "unknown"
}

// Lookup answers whether the current caller may have the value of name. The
// value is used only when st == Resolved; any other status (including an
// unknown one, which Render treats as Denied) leaves the placeholder as written.
type Lookup func(name string) (value []byte, st Status)

// Report says what Render did. Names are deduplicated and sorted; it never
// holds a value, so it can go to the audit log as it is.
type Report struct {
	Resolved, Missing, Denied []string
	Escaped                   int // escapes rendered as literal placeholders
	Malformed                 int // malformed references, left as written
}

// Render returns the consumer view of src: each Placeholder whose Lookup
// answer is Resolved is replaced by its filtered value, each Escaped ref by its
// literal text without the extra '$', and everything else is copied as
// written. Lookup is called at most once per distinct name per call.
//
// If nothing changes (no placeholder resolved, no escape), Render returns src
// itself, not a copy; otherwise a new slice that the caller owns and should
// wipe when done, since it holds values.
func Render(src []byte, lookup Lookup) ([]byte, Report) {
	var (
		rep   Report
		out   []byte
		last  int
		cache answers
	)
	flush := func(upTo int) {
		if out == nil {
			out = make([]byte, 0, len(src)+len(src)/8+64)
		}
		out = append(out, src[last:upTo]...)
	}
	Scan(src, func(r Ref) bool {
		switch r.Kind {
		case Malformed:
			rep.Malformed++
		case Escaped:
			flush(r.Start)
			out = append(out, src[r.Start+1:r.End]...)
			last = r.End
			rep.Escaped++
		case Placeholder:
			a := cache.find(r.Name)
			if a == nil {
				v, st := lookup(r.Name)
				if st != Resolved {
					v = nil // never keep what a refusing lookup returned
				}
				a = cache.add(answer{r.Name, v, st})
			}
			switch a.st {
			case Resolved:
				flush(r.Start)
				out = r.Filter.appendTo(out, a.value)
				last = r.End
			}
		}
		return true
	})
	for _, a := range cache.list {
		switch a.st {
		case Resolved:
			rep.Resolved = append(rep.Resolved, a.name)
		case Missing:
			rep.Missing = append(rep.Missing, a.name)
		default:
			rep.Denied = append(rep.Denied, a.name)
		}
	}
	slices.Sort(rep.Resolved)
	slices.Sort(rep.Missing)
	slices.Sort(rep.Denied)
	if out == nil {
		return src, rep
	}
	return append(out, src[last:]...), rep
}

type answer struct {
	name  string
	value []byte
	st    Status
}

// answers caches Lookup results for one Render call. Files carry a handful
// of distinct names and a slice beats a map for that; an index keeps a file
// with many thousands of distinct names linear.
type answers struct {
	list  []answer
	index map[string]int
}

func (c *answers) find(name string) *answer {
	if c.index != nil {
		if i, ok := c.index[name]; ok {
			return &c.list[i]
		}
		return nil
	}
	for i := range c.list {
		if c.list[i].name == name {
			return &c.list[i]
		}
	}
	return nil
}

func (c *answers) add(a answer) *answer {
	c.list = append(c.list, a)
	if c.index == nil && len(c.list) > 16 {
		c.index = make(map[string]int, 2*len(c.list))
		for i, a := range c.list {
			c.index[a.name] = i
		}
	} else if c.index != nil {
		c.index[a.name] = len(c.list) - 1
	}
	return &c.list[len(c.list)-1]
}
