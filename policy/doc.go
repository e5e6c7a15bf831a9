// Package policy decides which view of a file a process gets: the raw view,
// with ${credentials.NAME} placeholders byte for byte as written, or the
// resolved view, with the values of the credentials its rule covers.
//
// A consumer is a process that a consumer rule in the policy file matches
// (by executable, uid, gid, cgroup and executable of an ancestor) for the
// path it opens, and that is neither matched by an agent rule nor descended
// from a process that is. Everything else is an agent and gets the raw view.
//
// The adversary is the agent, which can run any program it likes. It will try
// to pass as a consumer. The defences here, one per trick:
//
//   - Thread ids. The pid in a FUSE request is the calling thread's id; it
//     is mapped to its thread group before anything else is read.
//   - Pid reuse. The process is pinned with a pidfd while /proc is read and
//     must still be alive afterwards; ancestors are checked by start time
//     (a parent never starts after its child). Identities are cached by
//     (tgid, start time), never by pid alone.
//   - Copied or replaced binaries. Executables are compared by device and
//     inode of the running image (/proc/PID/exe) against the configured path
//     as it is on disk now, so a copy elsewhere never matches and a binary
//     replaced after the process started stops matching.
//   - Running a permitted program itself (the confused deputy: `docker
//     compose config`, `psql -f`). A process descended from an agent is an
//     agent whatever program it runs; credentials are scoped to consumers and
//     to path globs.
//   - Pid 0. A caller outside the mount's pid namespace cannot be identified.
//
// Everything fails closed: a caller that cannot be identified, a /proc read
// that fails, a process that exits while it is being read, an ancestry deeper
// than 64 or a policy file that does not parse all mean the raw view, never a
// value. The zero values of View and Decision are the raw view.
//
// What this package cannot stop: an agent running under the same uid as a
// consumer can ptrace it and read its memory, and can move its own processes
// into a cgroup it owns (systemd user slices). Ancestry is read from the PPid
// chain, which a double fork cuts; agent rules by uid or cgroup survive that,
// agent rules by executable do not. Run agents under their own uid or cgroup.
//
// The daemon must be able to read /proc/PID/exe of callers and all their
// ancestors (root, or CAP_SYS_PTRACE); when it cannot, callers get the raw
// view.
//
// Use Load or Parse to read a policy, an Identifier to turn a FUSE caller into
// a Process, and Policy.Decide (or Policy.Explain, which runs the same code and
// says why) to get a Decision.
package policy
