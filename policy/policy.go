package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// MissingMode says what a consumer sees for a placeholder whose credential
// does not exist or is not covered by its rule.
type MissingMode uint8

const (
	// MissingKeep leaves the placeholder as written (the default).
	MissingKeep MissingMode = iota
	// MissingError fails the read with EIO.
	MissingError
)

func (m MissingMode) String() string {
	if m == MissingError {
		return "error"
	}
	return "keep"
}

// Policy is a parsed rules file. It is immutable once returned by Parse or
// Load and safe for concurrent use.
type Policy struct {
	// Source is the file the policy was read from.
	Source string
	// LoadedAt is when it was parsed.
	LoadedAt time.Time

	agents    []agentRule
	consumers []consumerRule
	expose    []string
	execAs    *RunAs
	missing   MissingMode
	exes      *exeCache
}

// Missing returns the policy's missing mode.
func (p *Policy) Missing() MissingMode { return p.missing }

// ExecExpose returns the credentials `faciofs exec --expose` may put into a
// child's environment.
func (p *Policy) ExecExpose() []string { return append([]string(nil), p.expose...) }

// RunAs is the user `faciofs exec` children run as (exec.uid, exec.gid).
type RunAs struct{ Uid, Gid uint32 }

// ExecRunAs returns the user exec's children run as, or nil: the caller's
// own uid and gid.
func (p *Policy) ExecRunAs() *RunAs {
	if p.execAs == nil {
		return nil
	}
	r := *p.execAs
	return &r
}

// ConsumerNames returns the names of the consumer rules, in file order.
func (p *Policy) ConsumerNames() []string {
	names := make([]string, len(p.consumers))
	for i := range p.consumers {
		names[i] = p.consumers[i].name
	}
	return names
}

// agentRule is one entry of agents: every field given must match.
type agentRule struct {
	index   int
	desc    string // "uid 1001, exe /usr/local/bin/agent-runtime"
	uids    []uint32
	gids    []uint32
	exes    []string
	cgroups []glob
}

// consumerRule is one entry of consumers.
type consumerRule struct {
	name         string
	uids         []uint32
	gids         []uint32
	exes         []string
	cgroups      []glob
	ancestorExes []string
	allCreds     bool
	creds        []string
	paths        []glob
}

// ParseError is a problem in a rules file. Line is 0 when the problem is
// about the whole file.
type ParseError struct {
	File string
	Line int
	Msg  string
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Load reads and parses the rules file at path.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return Parse(data, path)
}

var (
	credentialName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	consumerName   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	yamlLineError  = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

// Parse parses a rules file; filename is used in error messages and as
// Source. An empty file is a valid policy under which nobody is a consumer.
func Parse(data []byte, filename string) (*Policy, error) {
	ps := &parser{file: filename}
	doc, err := ps.decode(data)
	if err != nil {
		return nil, err
	}
	p := &Policy{Source: filename, LoadedAt: time.Now(), exes: newExeCache(exeCacheTTL)}
	if doc == nil {
		// An empty file is most often one caught half-written (an editor
		// saving, a truncated copy): taking it as "nobody is a consumer"
		// would silently replace a working policy on reload.
		return nil, &ParseError{File: filename, Msg: "the policy is empty; a policy under which nobody is a consumer is `version: 1`"}
	}
	if err := ps.top(doc, p); err != nil {
		return nil, err
	}
	return p, nil
}

type parser struct{ file string }

func (ps *parser) errf(n *yaml.Node, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &ParseError{File: ps.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// decode returns the document's root node, or nil for an empty document.
func (ps *parser) decode(data []byte) (root *yaml.Node, err error) {
	defer func() {
		// A panic in the YAML library must not take the daemon down on a
		// reload; the old policy stays in force.
		if r := recover(); r != nil {
			root, err = nil, &ParseError{File: ps.file, Msg: fmt.Sprintf("invalid YAML (%v)", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, ps.yamlError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, ps.errf(&extra, "a policy file holds one YAML document; found a second one")
	} else if !errors.Is(err, io.EOF) {
		return nil, ps.yamlError(err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, ps.errf(&doc, "not a YAML document")
	}
	root = doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil, nil
	}
	return root, nil
}

func (ps *parser) yamlError(err error) error {
	msg := strings.TrimSpace(err.Error())
	if m := yamlLineError.FindStringSubmatch(msg); m != nil {
		if line, convErr := strconv.Atoi(m[1]); convErr == nil {
			return &ParseError{File: ps.file, Line: line, Msg: m[2]}
		}
	}
	return &ParseError{File: ps.file, Msg: strings.TrimPrefix(msg, "yaml: ")}
}

// fields checks that n is a mapping with no duplicate, unknown or aliased
// entries and calls f for each key in file order.
func (ps *parser) fields(n *yaml.Node, what string, allowed []string, f func(key string, k, v *yaml.Node) error) error {
	if n.Kind == yaml.AliasNode {
		return ps.errf(n, "%s: YAML aliases are not supported", what)
	}
	if n.Kind != yaml.MappingNode {
		return ps.errf(n, "%s must be a mapping", what)
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.ShortTag() == "!!merge" {
			return ps.errf(k, "%s: merge keys (<<) are not supported", what)
		}
		if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" {
			return ps.errf(k, "%s: keys must be plain strings", what)
		}
		if line, dup := seen[k.Value]; dup {
			return ps.errf(k, "%s: key %q already given on line %d", what, k.Value, line)
		}
		seen[k.Value] = k.Line
		known := false
		for _, a := range allowed {
			known = known || a == k.Value
		}
		if !known {
			return ps.errf(k, "%s: unknown key %q (expected one of: %s)", what, k.Value, strings.Join(allowed, ", "))
		}
		if v.Kind == yaml.AliasNode {
			return ps.errf(v, "%s.%s: YAML aliases are not supported", what, k.Value)
		}
		if err := f(k.Value, k, v); err != nil {
			return err
		}
	}
	return nil
}

func (ps *parser) str(n *yaml.Node, what string) (string, error) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		return "", ps.errf(n, "%s must be a string", what)
	}
	return n.Value, nil
}

func (ps *parser) id(n *yaml.Node, what string) (uint32, error) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		return 0, ps.errf(n, "%s must be a number", what)
	}
	var v int64
	if err := n.Decode(&v); err != nil || v < 0 || v >= math.MaxUint32 {
		return 0, ps.errf(n, "%s: %q is not a valid id (0 to %d)", what, n.Value, uint32(math.MaxUint32-1))
	}
	return uint32(v), nil
}

// list accepts a sequence or a single scalar and calls f for each element.
// Empty lists are errors: a field that is given must be able to match.
func (ps *parser) list(n *yaml.Node, what string, f func(*yaml.Node) error) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return ps.errf(n, "%s: missing value", what)
		}
		return f(n)
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			return ps.errf(n, "%s must not be empty", what)
		}
		for _, e := range n.Content {
			if e.Kind != yaml.ScalarNode {
				return ps.errf(e, "%s: entries must be single values", what)
			}
			if err := f(e); err != nil {
				return err
			}
		}
		return nil
	default:
		return ps.errf(n, "%s must be a value or a list of values", what)
	}
}

func (ps *parser) ids(n *yaml.Node, what string) ([]uint32, error) {
	var out []uint32
	err := ps.list(n, what, func(e *yaml.Node) error {
		v, err := ps.id(e, what)
		out = append(out, v)
		return err
	})
	return out, err
}

func (ps *parser) exes(n *yaml.Node, what string) ([]string, error) {
	var out []string
	err := ps.list(n, what, func(e *yaml.Node) error {
		s, err := ps.str(e, what)
		if err != nil {
			return err
		}
		if !path.IsAbs(s) {
			return ps.errf(e, "%s: %q is not an absolute path", what, s)
		}
		out = append(out, path.Clean(s))
		return nil
	})
	return out, err
}

func (ps *parser) cgroups(n *yaml.Node, what string) ([]glob, error) {
	var out []glob
	err := ps.list(n, what, func(e *yaml.Node) error {
		s, err := ps.str(e, what)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(s, "/") {
			return ps.errf(e, "%s: %q must start with / (cgroup v2 paths are absolute)", what, s)
		}
		g := glob{} // "/" is the root cgroup: no segments
		if s != "/" {
			if g, err = compileGlob(strings.TrimPrefix(s, "/")); err != nil {
				return ps.errf(e, "%s: %q: %v", what, s, err)
			}
		}
		g.text = s
		out = append(out, g)
		return nil
	})
	return out, err
}

func (ps *parser) credentials(n *yaml.Node, what string, allowStar bool) (names []string, all bool, err error) {
	err = ps.list(n, what, func(e *yaml.Node) error {
		s, err := ps.str(e, what)
		if err != nil {
			return err
		}
		if s == "*" && allowStar {
			all = true
			return nil
		}
		if !credentialName.MatchString(s) {
			if s == "*" {
				return ps.errf(e, "%s: \"*\" is not allowed here; name each credential", what)
			}
			return ps.errf(e, "%s: %q is not a credential name (letters, digits and _, not starting with a digit, at most 128)", what, s)
		}
		for _, have := range names {
			if have == s {
				return ps.errf(e, "%s: %q listed twice", what, s)
			}
		}
		names = append(names, s)
		return nil
	})
	return names, all, err
}

func (ps *parser) top(root *yaml.Node, p *Policy) error {
	haveVersion := false
	err := ps.fields(root, "policy", []string{"version", "agents", "consumers", "exec", "missing"}, func(key string, _, v *yaml.Node) error {
		switch key {
		case "version":
			if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int" || v.Value != "1" {
				return ps.errf(v, "version must be 1 (got %q)", v.Value)
			}
			haveVersion = true
		case "agents":
			return ps.agents(v, p)
		case "consumers":
			return ps.consumers(v, p)
		case "exec":
			if v.ShortTag() == "!!null" {
				return nil
			}
			return ps.exec(v, p)
		case "missing":
			s, err := ps.str(v, "missing")
			if err != nil {
				return err
			}
			switch s {
			case "keep":
				p.missing = MissingKeep
			case "error":
				p.missing = MissingError
			default:
				return ps.errf(v, "missing must be keep or error (got %q)", s)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !haveVersion {
		return ps.errf(root, "version is required (add \"version: 1\")")
	}
	return nil
}

// exec reads the exec section: expose, and uid and gid, which go together.
func (ps *parser) exec(n *yaml.Node, p *Policy) error {
	var uid, gid *uint32
	err := ps.fields(n, "exec", []string{"expose", "uid", "gid"}, func(key string, _, v *yaml.Node) error {
		switch key {
		case "expose":
			names, _, err := ps.credentials(v, "exec.expose", false)
			p.expose = names
			return err
		default:
			id, err := ps.id(v, "exec."+key)
			if key == "uid" {
				uid = &id
			} else {
				gid = &id
			}
			return err
		}
	})
	if err != nil {
		return err
	}
	switch {
	case uid == nil && gid == nil:
	case uid == nil || gid == nil:
		return ps.errf(n, "exec: give both uid and gid, or neither")
	case *uid == 0:
		return ps.errf(n, "exec.uid: children may not run as root")
	default:
		p.execAs = &RunAs{Uid: *uid, Gid: *gid}
	}
	return nil
}

func (ps *parser) agents(n *yaml.Node, p *Policy) error {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return ps.errf(n, "agents must be a list")
	}
	for i, e := range n.Content {
		what := fmt.Sprintf("agents[%d]", i)
		r := agentRule{index: i}
		var desc []string
		err := ps.fields(e, what, []string{"uid", "gid", "exe", "cgroup"}, func(key string, _, v *yaml.Node) error {
			var err error
			field := what + "." + key
			switch key {
			case "uid":
				r.uids, err = ps.ids(v, field)
				desc = append(desc, "uid "+joinIDs(r.uids))
			case "gid":
				r.gids, err = ps.ids(v, field)
				desc = append(desc, "gid "+joinIDs(r.gids))
			case "exe":
				r.exes, err = ps.exes(v, field)
				desc = append(desc, "exe "+strings.Join(r.exes, "|"))
			case "cgroup":
				r.cgroups, err = ps.cgroups(v, field)
				desc = append(desc, "cgroup "+joinGlobs(r.cgroups))
			}
			return err
		})
		if err != nil {
			return err
		}
		if len(desc) == 0 {
			return ps.errf(e, "%s gives no field; use one or more of uid, gid, exe, cgroup", what)
		}
		r.desc = strings.Join(desc, ", ")
		p.agents = append(p.agents, r)
	}
	return nil
}

func (ps *parser) consumers(n *yaml.Node, p *Policy) error {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return ps.errf(n, "consumers must be a list")
	}
	names := map[string]int{}
	for i, e := range n.Content {
		what := fmt.Sprintf("consumers[%d]", i)
		var r consumerRule
		var haveName, haveMatch, haveCreds, havePaths bool
		err := ps.fields(e, what, []string{"name", "match", "credentials", "paths"}, func(key string, _, v *yaml.Node) error {
			var err error
			switch key {
			case "name":
				if r.name, err = ps.str(v, what+".name"); err != nil {
					return err
				}
				if !consumerName.MatchString(r.name) {
					return ps.errf(v, "%s.name %q: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", what, r.name)
				}
				if line, dup := names[r.name]; dup {
					return ps.errf(v, "%s.name %q is already used on line %d", what, r.name, line)
				}
				names[r.name] = v.Line
				haveName = true
			case "match":
				haveMatch = true
				return ps.match(v, what+".match", &r)
			case "credentials":
				haveCreds = true
				r.creds, r.allCreds, err = ps.credentials(v, what+".credentials", true)
			case "paths":
				havePaths = true
				err = ps.list(v, what+".paths", func(e *yaml.Node) error {
					s, err := ps.str(e, what+".paths")
					if err != nil {
						return err
					}
					g, err := compileGlob(s)
					if err != nil {
						return ps.errf(e, "%s.paths: %q: %v", what, s, err)
					}
					r.paths = append(r.paths, g)
					return nil
				})
			}
			return err
		})
		if err != nil {
			return err
		}
		switch {
		case !haveName:
			return ps.errf(e, "%s: name is required", what)
		case !haveMatch:
			return ps.errf(e, "%s (%s): match is required", what, r.name)
		case !haveCreds:
			return ps.errf(e, "%s (%s): credentials is required (a list of names, or \"*\")", what, r.name)
		case !havePaths:
			return ps.errf(e, "%s (%s): paths is required (globs relative to the mount root; [\"**\"] for every file)", what, r.name)
		}
		p.consumers = append(p.consumers, r)
	}
	return nil
}

func (ps *parser) match(n *yaml.Node, what string, r *consumerRule) error {
	given := false
	err := ps.fields(n, what, []string{"exe", "uid", "gid", "cgroup", "ancestor_exe"}, func(key string, _, v *yaml.Node) error {
		var err error
		field := what + "." + key
		given = true
		switch key {
		case "exe":
			r.exes, err = ps.exes(v, field)
		case "uid":
			r.uids, err = ps.ids(v, field)
		case "gid":
			r.gids, err = ps.ids(v, field)
		case "cgroup":
			r.cgroups, err = ps.cgroups(v, field)
		case "ancestor_exe":
			r.ancestorExes, err = ps.exes(v, field)
		}
		return err
	})
	if err != nil {
		return err
	}
	if !given {
		return ps.errf(n, "%s gives no field; use one or more of exe, uid, gid, cgroup, ancestor_exe", what)
	}
	return nil
}

func joinIDs(ids []uint32) string {
	s := make([]string, len(ids))
	for i, v := range ids {
		s[i] = strconv.FormatUint(uint64(v), 10)
	}
	return strings.Join(s, "|")
}

func joinGlobs(gs []glob) string {
	s := make([]string, len(gs))
	for i, g := range gs {
		s[i] = g.text
	}
	return strings.Join(s, "|")
}
