package integration

// Real consumers end to end. In each test the agent (uid agentUID, an
// agents rule) writes the file on the mount with placeholders; the agent's
// cat shows the placeholders byte for byte; the consumer named by the
// policy works with the real value; the same program run by the agent gets
// placeholders; the daemon records the resolution.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

const agentRule = "agents:\n  - uid: 4302\n"

// agentMkdir makes a directory in the mount as the agent.
func agentMkdir(t *testing.T, path string) {
	t.Helper()
	ok(t, asAgent, "/", nil, "", "mkdir", "-p", path)
}

// wantAgentCat checks that the agent's cat shows exactly raw.
func wantAgentCat(t *testing.T, path, raw string) {
	t.Helper()
	if got := agentCat(t, path); got != raw {
		t.Errorf("the agent's cat %s = %q, want the placeholders as written", filepath.Base(path), redact(got))
	}
}

// ---- PostgreSQL --------------------------------------------------------------

// realPsql is the ELF psql (Debian's /usr/bin/psql is a Perl wrapper that
// execs it): the newest /usr/lib/postgresql/*/bin/psql.
func realPsql(t *testing.T) string {
	t.Helper()
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/psql")
	if len(m) == 0 {
		t.Fatal("PostgreSQL is not installed (apt-get install postgresql; .ci/run does)")
	}
	sort.Slice(m, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(m[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(m[j]))))
		return vi < vj
	})
	return m[len(m)-1]
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startPostgres runs a PostgreSQL server as the postgres user on a
// temporary directory, listening on 127.0.0.1:port with scram-sha-256
// password authentication, with a role "app" whose password is PGPASSWORD.
// The server is stopped at cleanup.
func startPostgres(t *testing.T, bindir string) int {
	t.Helper()
	dir, err := os.MkdirTemp(workDir, "pg-")
	must(t, err)
	ok(t, asRoot, "/", nil, "", "chown", "postgres:postgres", dir)
	data := filepath.Join(dir, "data")
	pg := func(stdin, prog string, args ...string) ran {
		t.Helper()
		return ok(t, asRoot, dir, nil, stdin, "runuser", append([]string{"-u", "postgres", "--", filepath.Join(bindir, prog)}, args...)...)
	}
	pg("", "initdb", "-D", data, "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync")
	port := freePort(t)
	pg("", "pg_ctl", "-D", data, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "60",
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", port, dir), "start")
	t.Cleanup(func() {
		run(t, asRoot, dir, nil, "", "runuser", "-u", "postgres", "--", filepath.Join(bindir, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop")
	})
	// The password goes in on stdin, not argv.
	pg("CREATE ROLE app LOGIN PASSWORD '"+creds["PGPASSWORD"]+"';\n", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
		"-h", dir, "-p", strconv.Itoa(port), "-U", "postgres", "-d", "postgres")
	return port
}

// TestPsql: psql logs in with the password from a .pgpass on the mount.
func TestPsql(t *testing.T) {
	t.Parallel()
	psql := realPsql(t)
	m := newMount(t)
	m.start(fmt.Sprintf(`version: 1
%sconsumers:
  - name: psql
    match:
      exe: %s
    credentials: [PGPASSWORD, PG_WRONG]
    paths: ["db/*.pgpass", "db/.pgpass"]
`, agentRule, psql))
	port := startPostgres(t, filepath.Dir(psql))

	db := filepath.Join(m.mnt, "db")
	agentMkdir(t, db)
	line := func(name string) string { return fmt.Sprintf("127.0.0.1:%d:*:app:%s\n", port, ph(name)) }
	files := map[string]string{".pgpass": line("PGPASSWORD"), "wrong.pgpass": line("PG_WRONG"), "missing.pgpass": line("PG_NOT_IN_STORE")}
	for name, raw := range files {
		agentWrite(t, filepath.Join(db, name), raw, 0o600) // psql ignores a .pgpass readable by others
	}
	psqlAs := func(w who, passfile string) ran {
		env := append(baseEnv("/"), "PGPASSFILE="+filepath.Join(db, passfile), "PGCONNECT_TIMEOUT=20")
		r := run(t, w, "/", env, "", psql, "-X", "-w", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "app", "-d", "postgres", "-tAc", "select 1")
		noLeak(t, "psql output as "+w.name, []byte(r.stdout+r.stderr))
		return r
	}

	// The consumer logs in.
	if r := psqlAs(asRoot, ".pgpass"); r.code != 0 || strings.TrimSpace(r.stdout) != "1" {
		t.Errorf("psql (consumer) with .pgpass on the mount: exit %d, stdout %q, stderr %s", r.code, r.stdout, redact(r.stderr))
	}
	if !m.resolvedIn("db/.pgpass", "PGPASSWORD") {
		t.Errorf("the daemon's log records no resolution of db/.pgpass: %s", redact(m.log()))
	}
	// The agent sees the placeholder, and its psql cannot log in.
	wantAgentCat(t, filepath.Join(db, ".pgpass"), files[".pgpass"])
	if r := psqlAs(asAgent, ".pgpass"); r.code == 0 || !strings.Contains(r.stderr, `password authentication failed for user "app"`) {
		t.Errorf("psql run by the agent: exit %d, stderr %s; want psql's own authentication error", r.code, redact(r.stderr))
	}
	// A wrong value and a missing credential: psql's own error.
	for _, f := range []string{"wrong.pgpass", "missing.pgpass"} {
		if r := psqlAs(asRoot, f); r.code == 0 || !strings.Contains(r.stderr, `password authentication failed for user "app"`) {
			t.Errorf("psql (consumer) with %s: exit %d, stderr %s; want psql's authentication error", f, r.code, redact(r.stderr))
		}
	}
	// Root that is not the consumer reads placeholders too.
	if got := ok(t, asRoot, "/", nil, "", "cat", filepath.Join(db, ".pgpass")).stdout; got != files[".pgpass"] {
		t.Errorf("root's cat (not a consumer) read %q", redact(got))
	}
}

// ---- docker-compose ------------------------------------------------------------

// TestDockerCompose: `docker-compose config` interpolates a .env from the
// mount. Debian's docker-compose is a Python script, so the process that
// reads the file is the Python interpreter: the consumer rule names a
// private copy of the interpreter that only the deploy job uses, and the
// agent runtime (a shell, named by an agents rule) that runs the very same
// command gets placeholders because its children are agents.
func TestDockerCompose(t *testing.T) {
	t.Parallel()
	compose := need(t, "docker-compose")
	m := newMount(t)
	py := copyExe(t, "/usr/bin/python3", filepath.Join(m.bin, "compose-python"))
	runtime := copyExe(t, "/bin/bash", filepath.Join(m.bin, "agent-runtime"))
	m.start(fmt.Sprintf(`version: 1
%s  - exe: %s
consumers:
  - name: compose-deploy
    match:
      exe: %s
    credentials: [DB_PASSWORD]
    paths: ["app/.env"]
`, agentRule, runtime, py))

	app := filepath.Join(m.mnt, "app")
	agentMkdir(t, app)
	env := "DB_PASSWORD=" + ph("DB_PASSWORD") + "\n"
	yml := "services:\n  db:\n    image: postgres:15\n    environment:\n      POSTGRES_PASSWORD: ${DB_PASSWORD}\n"
	agentWrite(t, filepath.Join(app, ".env"), env, 0o644)
	agentWrite(t, filepath.Join(app, "docker-compose.yml"), yml, 0o644)
	home := filepath.Join(m.dir, "home")
	must(t, os.Mkdir(home, 0o755))
	cenv := baseEnv(home)
	args := []string{compose, "--project-directory", app, "-f", filepath.Join(app, "docker-compose.yml"), "config"}

	// The deploy job: the consumer.
	r := ok(t, asRoot, "/", cenv, "", py, args...)
	if want := "POSTGRES_PASSWORD: " + creds["DB_PASSWORD"] + "\n"; !strings.Contains(r.stdout, want) {
		t.Errorf("docker-compose config (consumer) does not show the resolved value: %s", redact(r.stdout))
	}
	if !m.resolvedIn("app/.env", "DB_PASSWORD") {
		t.Errorf("the daemon's log records no resolution of app/.env")
	}

	// The same command, started by the agent runtime (root, but an agent
	// by its executable) and by the agent's uid.
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = "'" + a + "'"
	}
	for _, c := range []struct {
		w    who
		prog string
		args []string
	}{
		{asRoot, runtime, []string{"-c", py + " " + strings.Join(quoted, " ") + "; exit $?"}},
		{asAgent, py, args},
		{asAgent, compose, args[1:]},
	} {
		r := ok(t, c.w, "/", cenv, "", c.prog, c.args...)
		noLeak(t, "docker-compose config run by the agent", []byte(r.stdout+r.stderr))
		// python-dotenv (compose 1.x) expands the unknown variable
		// "credentials.DB_PASSWORD" of the placeholder to "".
		if !strings.Contains(r.stdout, "POSTGRES_PASSWORD: ''") {
			t.Errorf("docker-compose config run by the agent (%s): %s; want the placeholder, expanded by compose to ''", filepath.Base(c.prog), redact(r.stdout))
		}
	}
	r = ok(t, asRoot, "/", nil, "", runtime, "-c", "cat "+filepath.Join(app, ".env")+"; exit $?")
	if r.stdout != env {
		t.Errorf("the agent runtime's cat .env = %q, want the placeholder", redact(r.stdout))
	}
	wantAgentCat(t, filepath.Join(app, ".env"), env)
}

// ---- curl ------------------------------------------------------------------------

// TestCurl: `curl --config` sends the API token from a config file on the
// mount to a local server that checks it.
func TestCurl(t *testing.T) {
	t.Parallel()
	curl := need(t, "curl")
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		mu.Lock()
		seen = append(seen, h)
		mu.Unlock()
		if h != "Bearer "+creds["API_TOKEN"] {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		fmt.Fprintln(w, "authorized")
	}))
	defer srv.Close()
	m := newMount(t)
	consumer := copyExe(t, curl, filepath.Join(m.bin, "deploy-curl"))
	m.start(fmt.Sprintf(`version: 1
%sconsumers:
  - name: deploy-curl
    match:
      exe: %s
    credentials: [API_TOKEN]
    paths: ["api/curlrc"]
`, agentRule, consumer))
	api := filepath.Join(m.mnt, "api")
	agentMkdir(t, api)
	rc := fmt.Sprintf("url = \"%s/v1/ping\"\nheader = \"Authorization: Bearer %s\"\nsilent\nshow-error\nwrite-out = \"%%{http_code}\"\noutput = \"/dev/null\"\n", srv.URL, ph("API_TOKEN"))
	agentWrite(t, filepath.Join(api, "curlrc"), rc, 0o644)

	last := func() string {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) == 0 {
			return ""
		}
		return seen[len(seen)-1]
	}
	if r := ok(t, asRoot, "/", nil, "", consumer, "--config", filepath.Join(api, "curlrc")); r.stdout != "200" {
		t.Errorf("curl (consumer): status %s, stderr %s; want 200", r.stdout, redact(r.stderr))
	}
	if !m.resolvedIn("api/curlrc", "API_TOKEN") {
		t.Errorf("the daemon's log records no resolution of api/curlrc")
	}
	for _, prog := range []string{consumer, curl} {
		r := ok(t, asAgent, "/", nil, "", prog, "--config", filepath.Join(api, "curlrc"))
		noLeak(t, "curl output as the agent", []byte(r.stdout+r.stderr))
		if r.stdout != "401" {
			t.Errorf("curl run by the agent (%s): status %s, want 401", filepath.Base(prog), r.stdout)
		}
		if got := last(); got != "Bearer "+ph("API_TOKEN") {
			t.Errorf("the server received %q from the agent's curl, want the placeholder", redact(got))
		}
	}
	wantAgentCat(t, filepath.Join(api, "curlrc"), rc)
}

// ---- MCP -------------------------------------------------------------------------

// TestMCP: an MCP host (go-sdk client) reads an mcpServers config from the
// mount and starts the server over stdio with the env of the config; the
// server's tool compares its env var with a SHA-256, so the value never
// travels back.
func TestMCP(t *testing.T) {
	t.Parallel()
	m := newMount(t)
	host := copyExe(t, filepath.Join(binDir, "mcphost"), filepath.Join(m.bin, "mcp-host"))
	m.start(fmt.Sprintf(`version: 1
%sconsumers:
  - name: mcp-host
    match:
      exe: %s
    credentials: [OPENAI_API_KEY, API_TOKEN]
    paths: ["mcp.json"]
`, agentRule, host))
	server := filepath.Join(binDir, "mcpenvcheck")
	cfg := fmt.Sprintf(`{
  "mcpServers": {
    "openai": {
      "command": %q,
      "args": [],
      "env": {"OPENAI_API_KEY": "${credentials.OPENAI_API_KEY|json}"}
    },
    "api": {
      "command": %q,
      "args": ["--stdio"],
      "env": {"API_TOKEN": "${credentials.API_TOKEN}"}
    }
  }
}
`, server, server)
	path := filepath.Join(m.mnt, "mcp.json")
	agentWrite(t, path, cfg, 0o644)
	wantAgentCat(t, path, cfg)

	call := func(w who, exe, srv, name string) string {
		sum := sha256.Sum256([]byte(creds[name]))
		arg, _ := json.Marshal(map[string]string{"name": name, "sha256": hex.EncodeToString(sum[:])})
		r := ok(t, w, "/", nil, "", exe, path, srv, "check_env", string(arg))
		noLeak(t, "mcphost output as "+w.name, []byte(r.stdout+r.stderr))
		return strings.TrimSpace(r.stdout)
	}
	for _, c := range []struct{ srv, name string }{{"openai", "OPENAI_API_KEY"}, {"api", "API_TOKEN"}} {
		if got := call(asRoot, host, c.srv, c.name); got != `{"result":"match"}` {
			t.Errorf("MCP server %s started by the host (consumer): %s, want match", c.srv, got)
		}
		// The agent running the same host: its server gets placeholders.
		if got := call(asAgent, host, c.srv, c.name); got != `{"result":"placeholder"}` {
			t.Errorf("MCP server %s started by the agent's host: %s, want placeholder", c.srv, got)
		}
	}
	if !m.resolvedIn("mcp.json", "OPENAI_API_KEY") {
		t.Errorf("the daemon's log records no resolution of mcp.json")
	}
}

// ---- config loaders --------------------------------------------------------------

// TestConfigLoaders: Python (json.load, a .env read), Node
// (fs.readFileSync, which sizes its buffer from st_size) and Go
// (os.ReadFile), each as a consumer (a private copy of the interpreter or
// program) and as the agent, get exact bytes.
func TestConfigLoaders(t *testing.T) {
	t.Parallel()
	node := need(t, "node")
	m := newMount(t)
	py := copyExe(t, "/usr/bin/python3", filepath.Join(m.bin, "app-python"))
	nd := copyExe(t, node, filepath.Join(m.bin, "app-node"))
	gold := copyExe(t, agentProbe(t), filepath.Join(m.bin, "app-go"))
	m.start(fmt.Sprintf(`version: 1
%sconsumers:
  - name: apps
    match:
      exe: [%s, %s, %s]
    credentials: [LOADER_LONG, LOADER_SHORT, OPENAI_API_KEY]
    paths: ["cfg/**"]
`, agentRule, py, nd, gold))

	cfg := filepath.Join(m.mnt, "cfg")
	agentMkdir(t, cfg)
	type file struct{ raw, resolved string }
	jsonEsc := func(v string) string { j, _ := json.Marshal(v); return string(j[1 : len(j)-1]) }
	long, short, oa := creds["LOADER_LONG"], creds["LOADER_SHORT"], creds["OPENAI_API_KEY"]
	files := map[string]file{
		"app.json": {
			`{"long": "${credentials.LOADER_LONG|json}", "short": "${credentials.LOADER_SHORT}", "openai": "${credentials.OPENAI_API_KEY|json}"}` + "\n",
			`{"long": "` + jsonEsc(long) + `", "short": "` + short + `", "openai": "` + jsonEsc(oa) + `"}` + "\n",
		},
		".env": {
			"LONG=" + ph("LOADER_LONG") + "\nSHORT=" + ph("LOADER_SHORT") + "\n",
			"LONG=" + long + "\nSHORT=" + short + "\n",
		},
		// Resolved much shorter than raw, and the other way round.
		"short.txt": {strings.Repeat("s="+ph("LOADER_SHORT")+"\n", 40), strings.Repeat("s="+short+"\n", 40)},
		"long.txt":  {strings.Repeat("l="+ph("LOADER_LONG")+"\n", 40), strings.Repeat("l="+long+"\n", 40)},
	}
	for name, f := range files {
		agentWrite(t, filepath.Join(cfg, name), f.raw, 0o644)
	}
	pyJSON := `import json,sys
with open(sys.argv[1]) as f:
    d = json.load(f)
sys.stdout.write(d["long"] + "\n" + d["short"] + "\n" + d["openai"] + "\n")`
	pyEnv := `import sys
env = {}
for line in open(sys.argv[1], encoding="utf-8"):
    k, _, v = line.rstrip("\n").partition("=")
    env[k] = v
sys.stdout.write(env["LONG"] + "\n" + env["SHORT"] + "\n")`
	ndRead := `process.stdout.write(require("fs").readFileSync(process.argv[1]))`
	ndJSON := `const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); process.stdout.write(d.long + "\n" + d.short + "\n" + d.openai + "\n")`

	type loader struct {
		name string
		prog string
		args []string
		file string
		env  []string
		want func(consumer bool) string
	}
	bytesOf := func(name string) func(bool) string {
		return func(c bool) string {
			if c {
				return files[name].resolved
			}
			return files[name].raw
		}
	}
	jsonVals := func(c bool) string {
		if c {
			return long + "\n" + short + "\n" + oa + "\n"
		}
		return ph("LOADER_LONG|json") + "\n" + ph("LOADER_SHORT") + "\n" + ph("OPENAI_API_KEY|json") + "\n"
	}
	envVals := func(c bool) string {
		if c {
			return long + "\n" + short + "\n"
		}
		return ph("LOADER_LONG") + "\n" + ph("LOADER_SHORT") + "\n"
	}
	var loaders []loader
	for _, n := range []string{"short.txt", "long.txt", "app.json", ".env"} {
		loaders = append(loaders,
			loader{name: "node readFileSync " + n, prog: nd, args: []string{"-e", ndRead}, file: n, want: bytesOf(n)},
			loader{name: "go os.ReadFile " + n, prog: gold, file: n, env: []string{roleEnv + "=goload"}, want: bytesOf(n)},
		)
	}
	loaders = append(loaders,
		loader{name: "python json.load", prog: py, args: []string{"-c", pyJSON}, file: "app.json", want: jsonVals},
		loader{name: "python .env", prog: py, args: []string{"-c", pyEnv}, file: ".env", want: envVals},
		loader{name: "node JSON.parse", prog: nd, args: []string{"-e", ndJSON}, file: "app.json", want: jsonVals},
	)
	for _, l := range loaders {
		for _, w := range []who{asRoot, asAgent} {
			env := append(baseEnv("/"), l.env...)
			r := ok(t, w, "/", env, "", l.prog, append(l.args, filepath.Join(cfg, l.file))...)
			consumer := w == asRoot
			if want := l.want(consumer); r.stdout != want {
				t.Errorf("%s as %s: got %d bytes %q, want %d bytes %q", l.name, w.name, len(r.stdout), redact(r.stdout), len(want), redact(want))
			}
			if !consumer {
				noLeak(t, l.name+" as the agent", []byte(r.stdout+r.stderr))
			}
		}
	}
	// The real interpreters (not the consumers' copies) read placeholders,
	// even as root.
	r := ok(t, asRoot, "/", nil, "", "/usr/bin/python3", "-c", pyEnv, filepath.Join(cfg, ".env"))
	if r.stdout != envVals(false) {
		t.Errorf("/usr/bin/python3 (not a consumer) read %q", redact(r.stdout))
	}
	for name, f := range files {
		wantAgentCat(t, filepath.Join(cfg, name), f.raw)
	}
	if !m.resolvedIn("cfg/short.txt", "LOADER_SHORT") {
		t.Errorf("the daemon's log records no resolution of cfg/short.txt")
	}
}
