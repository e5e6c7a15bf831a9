// Package fs is the faciofs FUSE filesystem: a loopback over a backing
// directory that shows each process one of two kinds of view of a file
// holding placeholders such as ${credentials.NAME}.
//
// Threat model. The caller is usually the agent, and the agent must never
// obtain a byte of a credential value. The kernel shares its page cache and
// attribute cache between every process that reaches the same inode, so a
// view cannot be a property of a read request: it has to be a property of the
// inode. For a regular file on a path some consumer rule covers, every view
// gets its own FUSE node ID from LOOKUP:
//
//   - the raw node, shown to the agent and to every process the policy does
//     not permit, whose bytes are the backing file's bytes;
//   - one view node per set of consumer rules, whose bytes are rendered from
//     the backing file for exactly the credentials those rules cover.
//
// Both get a zero dentry timeout, so every path walk asks LOOKUP again and
// is pointed at the caller's own node; their attributes, refreshed by each
// such LOOKUP, are cached for the usual second. A
// dentry may still be reused within the same jiffy; for that, Open and
// Getattr check the caller against the node and answer ESTALE when they
// differ, which makes the VFS repeat the walk with LOOKUP_REVAL. Content is
// only reachable through an open file, and every open is decided here, so a
// non-permitted process can never hold a handle to a view node, nor map or
// read its pages.
//
// Writes keep values out of the backing directory (invariant 2). Handles on
// view nodes keep the file in memory and store it only after reverse
// substitution, so a consumer's write never reaches disk with a value in it,
// not even briefly. Raw handles may be served by kernel passthrough; when a
// raw handle that was open for writing is flushed, the file is scanned and
// any known value is replaced by its placeholder before close(2) returns.
package fs
