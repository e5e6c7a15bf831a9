package policy

import (
	"errors"
	"path"
	"strings"
)

// glob is a slash-separated pattern: "**" as a whole segment matches zero or
// more segments; any other segment is a path.Match pattern (*, ?, [classes],
// \ escapes) matching exactly one segment. Unlike a shell, * also matches
// names that start with a dot.
type glob struct {
	text    string
	segs    []string
	literal []bool // segs[i] has no metacharacters
}

// compileGlob validates a relative pattern such as "**/.env".
func compileGlob(s string) (glob, error) {
	g := glob{text: s}
	if s == "" {
		return g, errors.New("empty pattern")
	}
	if strings.HasPrefix(s, "/") {
		return g, errors.New("patterns are relative to the root; drop the leading /")
	}
	for seg := range strings.SplitSeq(s, "/") {
		switch {
		case seg == "":
			return g, errors.New("empty path segment (// or a trailing /)")
		case seg == "." || seg == "..":
			return g, errors.New("'.' and '..' segments are not allowed")
		case seg != "**" && strings.Contains(seg, "**"):
			return g, errors.New("** must be a whole path segment (use * within a segment)")
		}
		if _, err := path.Match(seg, ""); err != nil {
			return g, errors.New("malformed pattern (unclosed [ or trailing \\)")
		}
		g.segs = append(g.segs, seg)
		g.literal = append(g.literal, !strings.ContainsAny(seg, `*?[\`))
	}
	return g, nil
}

// match reports whether the pattern matches the path split into segments.
// It is the usual wildcard algorithm with ** as the star: each star
// remembers where to resume, so the cost is O(len(pattern)*len(path)) and
// nothing is allocated.
func (g glob) match(segs []string) bool {
	p, s := 0, 0
	starP, starS := -1, 0
	for s < len(segs) {
		if p < len(g.segs) && g.segs[p] == "**" {
			starP, starS = p, s
			p++
			continue
		}
		if p < len(g.segs) && g.segMatch(p, segs[s]) {
			p++
			s++
			continue
		}
		if starP < 0 {
			return false
		}
		p = starP + 1
		starS++
		s = starS
	}
	for p < len(g.segs) && g.segs[p] == "**" {
		p++
	}
	return p == len(g.segs)
}

func (g glob) segMatch(i int, name string) bool {
	if g.literal[i] {
		return g.segs[i] == name
	}
	ok, _ := path.Match(g.segs[i], name)
	return ok
}

// splitPath turns a path relative to the mount root ("a/b/.env", "/a/b",
// "./a") into segments. ok is false for a path that climbs out of the root,
// which no pattern matches.
func splitPath(rel string) (segs []string, ok bool) {
	rel = path.Clean(strings.TrimLeft(rel, "/"))
	switch {
	case rel == ".":
		return nil, true
	case rel == ".." || strings.HasPrefix(rel, "../"):
		return nil, false
	}
	return strings.Split(rel, "/"), true
}

// splitCgroup splits a cgroup v2 path ("/user.slice/x.service").
func splitCgroup(cg string) []string {
	cg = strings.Trim(cg, "/")
	if cg == "" {
		return nil
	}
	return strings.Split(cg, "/")
}
