// Package audit is faciofs's audit trail: one JSON line per credential
// operation, hash-chained and MAC'd, stored in append-only segment files
// beside the store, and queryable without the store or a running mount.
//
// Use Open to get a Log and Append (waits until the record is on disk) or
// Post (queues it) to write; Scan to query; Verify to check the chain.
//
// Threat model. The agent is the adversary (SECURITY.md). It must learn
// nothing from the log, and it must not be able to rewrite what the log says
// it did without that being detected:
//
//   - Nothing secret goes in. A Record has no field for a value, and the
//     package never derives anything from one (no prefix, hash or length).
//     Callers pass credential names, paths relative to the mount and short
//     details; the daemon redacts known values from a process's command
//     line before it reaches Actor.Cmdline.
//   - Tamper evidence. Every record carries the SHA-256 of the previous line
//     (prev) and an HMAC-SHA256 (mac) over its own bytes, prev included,
//     keyed by store.Keyring.AuditKey. Editing, removing, reordering or
//     inserting a record breaks the chain or a MAC; Verify names the record.
//     The newest sealed sequence number and hash are also kept in an anchor
//     file outside the log directory, MAC'd, so cutting the tail off the log
//     is detected too.
//   - Unsealed records. Some commands run without the master password
//     (`secret list`, a wrong password). They append records that are
//     hash-chained but have an empty mac: they cannot be forged into the
//     middle of the log unnoticed once a later record is MAC'd (its MAC
//     covers the chain), but until then the unsealed tail can be edited or
//     cut by whoever can write the files. The next writer that holds the key
//     appends a "seal" record whose MAC covers them. Verify reports an
//     unsealed tail as such, not as tampering.
//
// Concurrency: several processes may append at once (CLI commands beside a
// running mount). Every batch is written under an flock on the directory's
// lock file, after re-reading the tail if another process wrote since. In a
// process, a single goroutine writes batches (group commit: one write and
// one fsync for everything queued), so the filesystem's readers never
// serialize on the disk individually.
package audit
