package policy

import (
	"fmt"
	"testing"
	"time"
)

const benchPolicy = `version: 1
agents:
  - uid: 1001
  - exe: /usr/local/bin/agent-runtime
  - cgroup: "/agent.slice/**"
consumers:
  - name: mcp-openai
    match: {exe: [/usr/bin/node], uid: [1000]}
    credentials: [OPENAI_API_KEY]
    paths: ["mcp.json", "**/.env"]
  - name: sleeper
    match: {exe: /usr/bin/sleep}
    credentials: [KEY1, KEY2]
    paths: ["**/.env"]
`

// BenchmarkDecideCached is the per-open cost for a caller seen before:
// Identify (pin, re-read start time, exe and cgroup) plus Decide.
func BenchmarkDecideCached(b *testing.B) {
	p := mustParse(b, benchPolicy)
	cmd := startSleep(b, "/usr/bin/sleep")
	id := NewIdentifier()
	c := Caller{Pid: uint32(cmd.Process.Pid)}
	if _, err := id.Identify(c); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		proc, err := id.Identify(c)
		if err != nil {
			b.Fatal(err)
		}
		if d := p.Decide(proc, c, "svc/.env"); !d.Allows("KEY1") {
			b.Fatal(d.Reason)
		}
	}
}

// BenchmarkDecideOnly is Decide alone for an identified process.
func BenchmarkDecideOnly(b *testing.B) {
	p := mustParse(b, benchPolicy)
	proc, c := identify(b, NewIdentifier(), startSleep(b, "/usr/bin/sleep").Process.Pid)
	b.ResetTimer()
	for b.Loop() {
		if d := p.Decide(proc, c, "svc/.env"); !d.Allows("KEY1") {
			b.Fatal(d.Reason)
		}
	}
}

// BenchmarkDecideNewCaller is a cache miss: the whole ancestry is read.
func BenchmarkDecideNewCaller(b *testing.B) {
	p := mustParse(b, benchPolicy)
	cmd := startSleep(b, "/usr/bin/sleep")
	c := Caller{Pid: uint32(cmd.Process.Pid)}
	proc, err := NewIdentifier().Identify(c)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(proc.Ancestors)), "ancestors")
	b.ResetTimer()
	for b.Loop() {
		proc, err := NewIdentifier().Identify(c)
		if err != nil {
			b.Fatal(err)
		}
		if d := p.Decide(proc, c, "svc/.env"); !d.Allows("KEY1") {
			b.Fatal(fmt.Sprint(d))
		}
	}
}

// BenchmarkDecideRecent is the filesystem's hot path: Recent (a thread
// identified within the last second) and Decide.
func BenchmarkDecideRecent(b *testing.B) {
	p := mustParse(b, benchPolicy)
	cmd := startSleep(b, "/usr/bin/sleep")
	id := NewIdentifier()
	c := Caller{Pid: uint32(cmd.Process.Pid)}
	for b.Loop() {
		proc, err := id.Recent(c, time.Second)
		if err != nil {
			b.Fatal(err)
		}
		if d := p.Decide(proc, c, "svc/.env"); !d.Allows("KEY1") {
			b.Fatal(d.Reason)
		}
	}
}
