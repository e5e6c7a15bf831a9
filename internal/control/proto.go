// Package control is the control plane of a running mount: a unix socket
// that the other faciofs commands talk to while the mount holds the store,
// the operations they ask for (Engine, used the same way with or without a
// mount), and the pending items (credential requests, deletions) that wait
// for a human. docs/control.md describes the protocol.
//
// Threat model: the socket's callers may be the agent. No operation returns
// a value: requests may carry a value in (secret.set) but responses carry
// names and metadata only. Everything that changes or removes a credential,
// and every approval or denial, needs the master password, checked by the
// daemon against the store; an agent can ask (request, secret.rm) but not
// approve. Every caller is identified by SO_PEERCRED and audited.
package control

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// MaxMessage is the largest request or response line, newline included.
const MaxMessage = 1 << 20

// Operations.
const (
	OpStatus     = "status"
	OpSecretSet  = "secret.set"
	OpSecretList = "secret.list"
	OpSecretRm   = "secret.rm"
	OpRequest    = "request"
	OpApprovals  = "approvals"
	OpApprove    = "approve"
	OpDeny       = "deny"
	OpExec       = "exec"
	OpScan       = "scan"
	// OpPolicyReload re-reads the mount's policy file (as SIGHUP does);
	// OpPolicyExplain explains the decision for a process and a path.
	// OpPasswd changes the master password of the store the mount holds.
	OpPasswd        = "passwd"
	OpPolicyReload  = "policy.reload"
	OpPolicyExplain = "policy.explain"
)

// MaxFiles is the most file descriptors one request may carry (SCM_RIGHTS):
// exec sends three (stdin, stdout, stderr), scan up to this many files.
const MaxFiles = 64

// Request is one JSON line from a client. Password and Value are base64 in
// JSON ([]byte); they travel in, never out.
type Request struct {
	Op       string `json:"op"`
	Name     string `json:"name,omitempty"`
	Label    string `json:"label,omitempty"`
	ID       string `json:"id,omitempty"`
	Password []byte `json:"password,omitempty"`
	Value    []byte `json:"value,omitempty"`
	// passwd: the new master password (password is the current one).
	NewPassword []byte `json:"new_password,omitempty"`
	// exec: the names to expose, the command, and the caller's
	// environment and working directory. Its stdin, stdout and stderr
	// come along as descriptors.
	// policy.explain: the process and the path (relative to the mount
	// root, or absolute under the mountpoint).
	Pid    int      `json:"pid,omitempty"`
	Path   string   `json:"path,omitempty"`
	Expose []string `json:"expose,omitempty"`
	Argv   []string `json:"argv,omitempty"`
	Env    []string `json:"env,omitempty"`
	Dir    string   `json:"dir,omitempty"`
}

// PolicyResult answers policy.reload and policy.explain: text for the human.
type PolicyResult struct {
	Text string `json:"text"`
}

// ExecSignal is a line the exec client sends after the child started: a
// signal the caller received, to pass on to the child.
type ExecSignal struct {
	Signal int `json:"signal"`
}

// ExecStarted is the first answer to exec: the child runs.
type ExecStarted struct {
	Started bool `json:"started"`
	Pid     int  `json:"pid"`
}

// ExecResult is the last answer to exec: how the child ended.
type ExecResult struct {
	// ExitCode is the child's status, or 128+N when signal N killed it.
	ExitCode   int    `json:"exit_code"`
	Signal     int    `json:"signal,omitempty"`
	Redactions int    `json:"redactions"`
	Error      string `json:"error,omitempty"` // the output could not be delivered
}

// ScanHit is one value or encoded form found by scan: the index of the
// file among the request's descriptors, the line, the credential and the
// form (never the value).
type ScanHit struct {
	File int    `json:"file"`
	Line int    `json:"line"`
	Name string `json:"name"`
	Form string `json:"form"`
}

// ScanResult answers scan.
type ScanResult struct {
	Hits []ScanHit `json:"hits"`
	// Errors maps a file's index to why it could not be scanned.
	Errors map[int]string `json:"errors,omitempty"`
	// Skipped names values too short to look for.
	Skipped []string `json:"skipped,omitempty"`
}

// wipe clears the secret fields.
func (r *Request) wipe() {
	clear(r.Password)
	clear(r.Value)
	clear(r.NewPassword)
}

// Response is one JSON line from the daemon: OK with a Result, or an Error
// of a Kind.
type Response struct {
	OK     bool   `json:"ok"`
	Result any    `json:"result,omitempty"`
	Error  string `json:"error,omitempty"`
	Kind   string `json:"kind,omitempty"`
}

// Error kinds; the CLI maps them to exit codes (usage 2, problem 1, the
// others 3).
const (
	KindUsage         = "usage"
	KindProblem       = "problem"
	KindWrongPassword = "wrong_password"
	KindNotFound      = "not_found"
	KindRuntime       = "runtime"
	// exec: the command could not be found, or found but not started.
	KindCommandNotFound = "command_not_found"
	KindCannotRun       = "cannot_run"
)

// Error is an error with a kind, as it crosses the socket.
type Error struct {
	Kind string
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

func errorf(kind, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// KindOf is the kind of err (KindRuntime unless it says otherwise).
func KindOf(err error) string {
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Kind
	}
	return KindRuntime
}

// ErrNoMount means no running mount serves the store: commands then open
// the store themselves.
var ErrNoMount = errors.New("no running mount for this store")

// RuntimeDir is where sockets live: /run/faciofs for root, else
// $XDG_RUNTIME_DIR/faciofs, else $TMPDIR/faciofs-UID.
func RuntimeDir() string {
	if os.Geteuid() == 0 {
		return rootRuntimeDir
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "faciofs")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("faciofs-%d", os.Geteuid()))
}

// rootRuntimeDir is where a root daemon listens.
const rootRuntimeDir = "/run/faciofs"

// canonical is the absolute path of a store, symlinks resolved if it exists.
func canonical(storePath string) string {
	p, err := filepath.Abs(storePath)
	if err != nil {
		p = storePath
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	}
	return p
}

// SocketPath is the socket of the mount holding the store at storePath.
// A store is held by at most one mount (its file lock), so the store's
// path names the socket: sha256 of the canonical path, 16 hex digits.
func SocketPath(storePath string) string {
	sum := sha256.Sum256([]byte(canonical(storePath)))
	return filepath.Join(RuntimeDir(), hex.EncodeToString(sum[:8])+".sock")
}

// Who identifies a caller, from SO_PEERCRED (or the command itself when
// there is no mount).
type Who struct {
	Pid int    `json:"pid"`
	Uid uint32 `json:"uid"`
	Gid uint32 `json:"gid"`
	Exe string `json:"exe,omitempty"`
	// Groups are the supplementary groups (SO_PEERGROUPS); exec's
	// children get them.
	Groups []uint32 `json:"-"`
}

// Status is what `faciofs status` shows.
type Status struct {
	Store      string  `json:"store"`
	StoreState string  `json:"store_state"` // absent | present | held by mount
	Mounts     []Mount `json:"mounts"`
}

// Mount describes one running mount.
type Mount struct {
	Pid          int       `json:"pid"`
	Backing      string    `json:"backing"`
	Mountpoint   string    `json:"mountpoint"`
	Socket       string    `json:"socket"`
	Started      time.Time `json:"started"`
	Policy       string    `json:"policy,omitempty"`
	PolicyLoaded time.Time `json:"policy_loaded,omitzero"`
	Credentials  int       `json:"credentials"`
	Counters     Counters  `json:"counters"`
}

// Counters are the filesystem's counters (fs.Stats).
type Counters struct {
	Opens     uint64 `json:"opens"`
	Resolves  uint64 `json:"resolves"`
	RawServes uint64 `json:"raw_serves"`
	Denials   uint64 `json:"denials"`
	Reversals uint64 `json:"reversals"`
}

// SetResult answers secret.set.
type SetResult struct {
	Name      string   `json:"name"`
	Created   bool     `json:"created"`
	Fulfilled []string `json:"fulfilled,omitempty"` // ids of requests it fulfilled
}

// Credential is one `secret list` entry: metadata only.
type Credential struct {
	Name         string     `json:"name"`
	Created      time.Time  `json:"created"`
	Updated      time.Time  `json:"updated"`
	Version      uint64     `json:"version"`
	LastResolved *time.Time `json:"last_resolved,omitempty"`
	ResolveCount uint64     `json:"resolve_count"`
}

// RequestResult answers request and secret.rm.
type RequestResult struct {
	Item   *Item `json:"item,omitempty"`   // the pending item (new or already pending)
	Exists bool  `json:"exists,omitempty"` // request: the credential is already set
	Again  bool  `json:"again,omitempty"`  // the same item was already pending
}

// DecideResult answers approve and deny.
type DecideResult struct {
	Item     Item `json:"item"`
	Approved bool `json:"approved"`
}
