package policy

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const fullPolicy = `version: 1
agents:
  - uid: 1001
  - exe: /usr/local/bin/agent-runtime
  - cgroup: "/agent.slice/**"
  - {uid: [1002, 1003], gid: 100}
consumers:
  - name: mcp-openai
    match:
      exe: [/usr/bin/node]
      uid: [1000]
      gid: 1000
      cgroup: ["/user.slice/**/mcp-host.service"]
      ancestor_exe: /usr/bin/claude
    credentials: [OPENAI_API_KEY]
    paths: ["mcp.json", "**/.env"]
  - name: everything
    match: {uid: 0}
    credentials: "*"
    paths: "**"
exec:
  expose: [GITHUB_TOKEN]
missing: error
`

func TestParseGood(t *testing.T) {
	p, err := Parse([]byte(fullPolicy), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p.Source != "p.yaml" || p.LoadedAt.IsZero() {
		t.Errorf("Source %q LoadedAt %v", p.Source, p.LoadedAt)
	}
	if p.Missing() != MissingError {
		t.Errorf("Missing() = %v", p.Missing())
	}
	if got := p.ExecExpose(); !reflect.DeepEqual(got, []string{"GITHUB_TOKEN"}) {
		t.Errorf("ExecExpose() = %v", got)
	}
	if got := p.ConsumerNames(); !reflect.DeepEqual(got, []string{"mcp-openai", "everything"}) {
		t.Errorf("ConsumerNames() = %v", got)
	}
	if len(p.agents) != 4 || p.agents[3].desc != "uid 1002|1003, gid 100" {
		t.Errorf("agents = %+v", p.agents)
	}
	c := p.consumers[0]
	if !reflect.DeepEqual(c.exes, []string{"/usr/bin/node"}) || !reflect.DeepEqual(c.uids, []uint32{1000}) ||
		!reflect.DeepEqual(c.gids, []uint32{1000}) || !reflect.DeepEqual(c.ancestorExes, []string{"/usr/bin/claude"}) ||
		len(c.cgroups) != 1 || len(c.paths) != 2 || c.allCreds || !reflect.DeepEqual(c.creds, []string{"OPENAI_API_KEY"}) {
		t.Errorf("consumer = %+v", c)
	}
	if !p.consumers[1].allCreds {
		t.Errorf("\"*\" not parsed as all credentials")
	}

	for name, src := range map[string]string{
		"no consumers":     "version: 1\n",
		"empty lists":      "version: 1\nagents: []\nconsumers: []\n",
		"null sections":    "version: 1\nagents:\nconsumers:\nexec:\n",
		"missing keep":     "version: 1\nmissing: keep\n",
		"root cgroup":      "version: 1\nagents: [{cgroup: /}]\n",
		"exe cleaned":      "version: 1\nagents: [{exe: /usr//bin/../bin/x}]\n",
		"exec expose list": "version: 1\nexec: {expose: A}\n",
		"exec run as":      "version: 1\nexec: {expose: A, uid: 1001, gid: 1002}\n",
	} {
		p, err := Parse([]byte(src), "p.yaml")
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if name != "no consumers" && len(p.consumers) != 0 {
			t.Errorf("%s: consumers %v", name, p.consumers)
		}
		if p.Missing() != MissingKeep {
			t.Errorf("%s: default missing mode %v", name, p.Missing())
		}
		if ra := p.ExecRunAs(); name == "exec run as" && (ra == nil || *ra != RunAs{Uid: 1001, Gid: 1002}) || name != "exec run as" && ra != nil {
			t.Errorf("%s: exec runs as %+v", name, ra)
		}
	}
}

// TestParseEmpty: an empty policy is an error, not "nobody is a
// consumer": a reload of a file caught half-written must keep the policy.
func TestParseEmpty(t *testing.T) {
	for name, src := range map[string]string{"empty file": "", "comments only": "# nothing yet\n", "null document": "---\n"} {
		if _, err := Parse([]byte(src), "p.yaml"); err == nil || !strings.Contains(err.Error(), "p.yaml: the policy is empty") {
			t.Errorf("%s: %v, want an error naming the file", name, err)
		}
	}
}

func TestParseBad(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		line      int
		msg       string
	}{
		{"syntax", "version: 1\nagents: [\n", 2, "did not find expected"},
		{"tab indent", "version: 1\n\tagents: []\n", 2, "tab character"},
		{"top not mapping", "- a\n", 1, "policy must be a mapping"},
		{"no version", "agents: []\n", 1, "version is required"},
		{"version 2", "version: 2\n", 1, "version must be 1"},
		{"version string", "version: \"1\"\n", 1, "version must be 1"},
		{"unknown top key", "version: 1\nconsumer: []\n", 2, `unknown key "consumer"`},
		{"duplicate top key", "version: 1\nmissing: keep\nmissing: error\n", 3, `key "missing" already given on line 2`},
		{"missing value", "version: 1\nmissing: sometimes\n", 2, "missing must be keep or error"},
		{"missing not string", "version: 1\nmissing: [keep]\n", 2, "missing must be a string"},
		{"agents not list", "version: 1\nagents: {uid: 1}\n", 2, "agents must be a list"},
		{"agent empty", "version: 1\nagents:\n  - {}\n", 3, "agents[0] gives no field"},
		{"agent unknown key", "version: 1\nagents:\n  - uid: 1\n    name: x\n", 4, `agents[0]: unknown key "name"`},
		{"agent bad uid", "version: 1\nagents:\n  - uid: alice\n", 3, "agents[0].uid must be a number"},
		{"agent negative uid", "version: 1\nagents:\n  - uid: -1\n", 3, "not a valid id"},
		{"agent huge gid", "version: 1\nagents:\n  - gid: 4294967295\n", 3, "not a valid id"},
		{"agent relative exe", "version: 1\nagents:\n  - exe: bin/agent\n", 3, "not an absolute path"},
		{"agent relative cgroup", "version: 1\nagents:\n  - cgroup: agent.slice\n", 3, "must start with /"},
		{"agent bad cgroup glob", "version: 1\nagents:\n  - cgroup: \"/a/[x\"\n", 3, "malformed pattern"},
		{"agent empty list", "version: 1\nagents:\n  - uid: []\n", 3, "must not be empty"},
		{"agent null field", "version: 1\nagents:\n  - uid:\n", 3, "missing value"},
		{"agent nested list", "version: 1\nagents:\n  - uid: [[1]]\n", 3, "entries must be single values"},
		{"consumers not list", "version: 1\nconsumers: x\n", 2, "consumers must be a list"},
		{"consumer no name", "version: 1\nconsumers:\n  - match: {uid: 1}\n    credentials: [A]\n    paths: [x]\n", 3, "name is required"},
		{"consumer empty name", "version: 1\nconsumers:\n  - name: \"\"\n", 3, "use 1 to 64 letters"},
		{"consumer name with newline", "version: 1\nconsumers:\n  - name: \"a\\nb\"\n", 3, "use 1 to 64 letters"},
		{"consumer duplicate name", "version: 1\nconsumers:\n  - name: a\n    match: {uid: 1}\n    credentials: [A]\n    paths: [x]\n  - name: a\n", 7, `"a" is already used on line 3`},
		{"consumer no match", "version: 1\nconsumers:\n  - name: a\n    credentials: [A]\n    paths: [x]\n", 3, "match is required"},
		{"consumer empty match", "version: 1\nconsumers:\n  - name: a\n    match: {}\n", 4, "match gives no field"},
		{"consumer null match", "version: 1\nconsumers:\n  - name: a\n    match:\n", 4, "match must be a mapping"},
		{"consumer match unknown key", "version: 1\nconsumers:\n  - name: a\n    match:\n      pid: 7\n", 5, `unknown key "pid"`},
		{"consumer match duplicate key", "version: 1\nconsumers:\n  - name: a\n    match:\n      uid: 7\n      uid: 8\n", 6, `key "uid" already given on line 5`},
		{"consumer relative ancestor", "version: 1\nconsumers:\n  - name: a\n    match: {ancestor_exe: claude}\n", 4, "not an absolute path"},
		{"consumer no credentials", "version: 1\nconsumers:\n  - name: a\n    match: {uid: 1}\n    paths: [x]\n", 3, "credentials is required"},
		{"consumer no paths", "version: 1\nconsumers:\n  - name: a\n    match: {uid: 1}\n    credentials: [A]\n", 3, "paths is required"},
		{"bad credential", "version: 1\nconsumers:\n  - name: a\n    match: {uid: 1}\n    credentials:\n      - GOOD\n      - 1BAD\n", 7, `"1BAD" is not a credential name`},
		{"credential too long", "version: 1\nconsumers:\n  - name: a\n    match: {uid: 1}\n    credentials: [" + strings.Repeat("A", 129) + "]\n", 5, "is not a credential name"},
		{"credential number", "version: 1\nconsumers:\n  - name: a\n    match: {uid: 1}\n    credentials: [12]\n", 5, "must be a string"},
		{"credential twice", "version: 1\nconsumers:\n  - name: a\n    match: {uid: 1}\n    credentials: [A, A]\n", 5, `"A" listed twice`},
		{"absolute path glob", "version: 1\nconsumers:\n  - name: a\n    match: {uid: 1}\n    credentials: [A]\n    paths: [/etc/x]\n", 6, "drop the leading /"},
		{"bad path glob", "version: 1\nconsumers:\n  - name: a\n    match: {uid: 1}\n    credentials: [A]\n    paths:\n      - ok\n      - \"[a-\"\n", 8, "malformed pattern"},
		{"dotdot glob", "version: 1\nconsumers:\n  - name: a\n    match: {uid: 1}\n    credentials: [A]\n    paths: [\"../x\"]\n", 6, "'..' segments"},
		{"star star in segment", "version: 1\nconsumers:\n  - name: a\n    match: {uid: 1}\n    credentials: [A]\n    paths: [\"a**\"]\n", 6, "whole path segment"},
		{"empty paths", "version: 1\nconsumers:\n  - name: a\n    match: {uid: 1}\n    credentials: [A]\n    paths: []\n", 6, "must not be empty"},
		{"exec star", "version: 1\nexec:\n  expose: [\"*\"]\n", 3, `"*" is not allowed here`},
		{"exec unknown", "version: 1\nexec:\n  expose: [A]\n  env: [B]\n", 4, `exec: unknown key "env"`},
		{"exec uid alone", "version: 1\nexec:\n  expose: [A]\n  uid: 1001\n", 3, "give both uid and gid"},
		{"exec root", "version: 1\nexec:\n  uid: 0\n  gid: 0\n", 3, "may not run as root"},
		{"exec uid name", "version: 1\nexec:\n  uid: nobody\n  gid: 1\n", 3, "exec.uid must be a number"},
		{"alias", "version: 1\nconsumers:\n  - &c\n    name: a\n    match: {uid: 1}\n    credentials: [A]\n    paths: [x]\n  - *c\n", 8, "aliases are not supported"},
		{"merge key", "version: 1\nagents:\n  - &a {uid: 1}\n  - <<: *a\n", 4, "merge keys (<<) are not supported"},
		{"second document", "version: 1\n---\nversion: 1\n", 2, "one YAML document"},
		{"non-string key", "version: 1\n1: x\n", 2, "keys must be plain strings"},
	} {
		_, err := Parse([]byte(tc.src), "rules.yaml")
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%s: got %v, want a ParseError", tc.name, err)
			continue
		}
		if pe.File != "rules.yaml" || pe.Line != tc.line || !strings.Contains(pe.Msg, tc.msg) {
			t.Errorf("%s: got %q, want rules.yaml:%d: ...%s...", tc.name, err, tc.line, tc.msg)
		}
		if want := "rules.yaml:"; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: %q does not start with %q", tc.name, err, want)
		}
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(fullPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := Load(path)
	if err != nil || p.Source != path {
		t.Fatalf("Load: %v, %+v", err, p)
	}
	if _, err := Load(path + ".missing"); err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
	if err := os.WriteFile(path, []byte("version: 1\nbogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.HasPrefix(err.Error(), path+":2: ") {
		t.Fatalf("Load of a bad file: %v", err)
	}
}

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		pattern, path string
		want          bool
	}{
		{"**/.env", ".env", true},
		{"**/.env", "a/b/.env", true},
		{"**/.env", "a/b/.env.local", false},
		{"**/.env", "a/.env/b", false},
		{"mcp.json", "mcp.json", true},
		{"mcp.json", "x/mcp.json", false},
		{"mcp.json", "/mcp.json", true},
		{"mcp.json", "./mcp.json", true},
		{"mcp.json", "x/../mcp.json", true},
		{"mcp.json", "../mcp.json", false},
		{"*.json", "mcp.json", true},
		{"*.json", "a/mcp.json", false},
		{"*", ".hidden", true},
		{"**", "", true},
		{"**", "a/b/c", true},
		{"a/**", "a", true},
		{"a/**", "a/b/c", true},
		{"a/**", "b/a", false},
		{"a/**/b", "a/b", true},
		{"a/**/b", "a/x/y/b", true},
		{"a/**/b", "a/x/y/c", false},
		{"**/a/**/b", "x/a/y/a/z/b", true},
		{"**/**/x", "x", true},
		{"conf/db?.pgpass", "conf/db1.pgpass", true},
		{"conf/db?.pgpass", "conf/db12.pgpass", false},
		{"[ab]/x", "a/x", true},
		{"[ab]/x", "c/x", false},
		{"[^ab]/x", "c/x", true},
		{`\*`, "*", true},
		{`\*`, "a", false},
		{"a/*/c", "a/b/c", true},
		{"a/*/c", "a/b/b/c", false},
	} {
		g, err := compileGlob(tc.pattern)
		if err != nil {
			t.Errorf("%q: %v", tc.pattern, err)
			continue
		}
		segs, ok := splitPath(tc.path)
		if got := ok && g.match(segs); got != tc.want {
			t.Errorf("%q matches %q = %v, want %v", tc.pattern, tc.path, got, tc.want)
		}
	}
	for _, bad := range []string{"", "/a", "a//b", "a/", "./a", "a/../b", "a**", "**b/c", "[a-", `a\`, "[]"} {
		if _, err := compileGlob(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	cg, err := compileGlob("user.slice/**/mcp-host.service")
	if err != nil {
		t.Fatal(err)
	}
	for cgroup, want := range map[string]bool{
		"/user.slice/user-1000.slice/user@1000.service/app.slice/mcp-host.service": true,
		"/user.slice/mcp-host.service":                                             true,
		"/system.slice/mcp-host.service":                                           false,
		"/":                                                                        false,
	} {
		if got := cg.match(splitCgroup(cgroup)); got != want {
			t.Errorf("cgroup %q = %v, want %v", cgroup, got, want)
		}
	}
}

func TestGlobDeepPathIsFast(t *testing.T) {
	g, err := compileGlob("**/a/**/a/**/a/**/b")
	if err != nil {
		t.Fatal(err)
	}
	segs, _ := splitPath(strings.Repeat("a/", 2000) + "c")
	if g.match(segs) {
		t.Fatal("matched")
	}
}

func TestCovers(t *testing.T) {
	p, err := Parse([]byte(`version: 1
consumers:
  - name: one
    match: {uid: 1000}
    credentials: [KEY1]
    paths: ["mcp.json", "**/.env"]
`), "covers.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{
		"mcp.json": true, ".env": true, "a/b/.env": true,
		"x/mcp.json": false, "notes.txt": false, "../.env": false,
	} {
		if got := p.Covers(path); got != want {
			t.Errorf("Covers(%q) = %v, want %v", path, got, want)
		}
	}
	var none *Policy
	if none.Covers(".env") {
		t.Error("a nil policy covers nothing")
	}
}
