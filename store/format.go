package store

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// On-disk layout (FormatVersion 1). All integers are big-endian.
//
//	bucket "header"
//	  "format"  u32 FormatVersion, read before anything else
//	  "kdf"     u8 algorithm (1 = argon2id) | u32 time | u32 memory KiB | u8 threads | u8 salt length | salt
//	  "key"     24-byte nonce | data key sealed with XChaCha20-Poly1305 under the argon2id KEK,
//	            associated data "faciofs key v1" | u32 format | kdf record
//	  "mac"     HMAC-SHA256 of the manifest (see manifest.mac)
//	bucket "values"    name -> value record (see encodeValue)
//	bucket "manifest"  name -> u64 version | sha256(value record)
//	bucket "meta"      name -> u8 1 | i64 last resolved (unix ns) | u64 resolve count; not authenticated
var (
	bucketHeader   = []byte("header")
	bucketValues   = []byte("values")
	bucketManifest = []byte("manifest")
	bucketMeta     = []byte("meta")

	keyFormat  = []byte("format")
	keyKDF     = []byte("kdf")
	keyWrapped = []byte("key")
	keyMAC     = []byte("mac")
)

const (
	kdfArgon2id     = 1
	saltLen         = 32
	nonceLen        = 24 // chacha20poly1305.NonceSizeX
	tagLen          = 16
	keyLen          = 32
	wrappedLen      = nonceLen + keyLen + tagLen
	valueRecFormat  = 1
	valueHeaderLen  = 1 + 8 + 8 + 8 + nonceLen
	metaRecFormat   = 1
	metaRecLen      = 1 + 8 + 8
	manifestEntLen  = 8 + sha256.Size
	maxKDFMemoryKiB = 4 << 20 // 4 GiB: a hostile header must not make Unlock exhaust memory
	maxKDFTime      = 1000

	infoManifest = "faciofs manifest v1"
	infoAudit    = "faciofs audit v1"
	adKeyWrap    = "faciofs key v1"
)

// KDFParams are the argon2id parameters that turn the master password into
// the key-encryption key.
type KDFParams struct {
	Time      uint32
	MemoryKiB uint32
	Threads   uint8
}

func (p KDFParams) check() error {
	switch {
	case p.Time < 1 || p.Time > maxKDFTime:
		return fmt.Errorf("argon2id time %d out of range 1..%d", p.Time, maxKDFTime)
	case p.Threads < 1:
		return fmt.Errorf("argon2id threads must be at least 1")
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxKDFMemoryKiB:
		return fmt.Errorf("argon2id memory %d KiB out of range %d..%d", p.MemoryKiB, 8*uint32(p.Threads), maxKDFMemoryKiB)
	}
	return nil
}

// header is the parsed "header" bucket; the raw records are kept because
// they are what the manifest MAC and the key-wrap associated data cover.
type header struct {
	kdf    KDFParams
	salt   []byte
	kdfRec []byte
	keyRec []byte
}

func encodeKDF(p KDFParams, salt []byte) []byte {
	b := []byte{kdfArgon2id}
	b = binary.BigEndian.AppendUint32(b, p.Time)
	b = binary.BigEndian.AppendUint32(b, p.MemoryKiB)
	b = append(b, p.Threads, byte(len(salt)))
	return append(b, salt...)
}

func keyWrapAD(kdfRec []byte) []byte {
	b := append([]byte(adKeyWrap), 0)
	b = binary.BigEndian.AppendUint32(b, FormatVersion)
	return append(b, kdfRec...)
}

func formatBytes() []byte { return binary.BigEndian.AppendUint32(nil, FormatVersion) }

// readHeader validates the layout and copies the header out of the map.
func readHeader(s *Store, btx *bolt.Tx) (*header, error) {
	hb := btx.Bucket(bucketHeader)
	if hb == nil {
		return nil, errorf(ErrCorrupt, "%s has no faciofs header: it is not a faciofs store, or it was damaged", s.path)
	}
	f := hb.Get(keyFormat)
	if len(f) != 4 {
		return nil, errorf(ErrCorrupt, "%s: store header is damaged (format version)", s.path)
	}
	if v := binary.BigEndian.Uint32(f); v != FormatVersion {
		return nil, errorf(ErrUnsupportedVersion,
			"%s has store format version %d; this faciofs reads version %d: use a faciofs release that supports it",
			s.path, v, FormatVersion)
	}
	kdfRec := bytes.Clone(hb.Get(keyKDF))
	if len(kdfRec) < 11 || kdfRec[0] != kdfArgon2id || int(kdfRec[10]) != len(kdfRec)-11 || len(kdfRec)-11 < 16 {
		return nil, errorf(ErrCorrupt, "%s: store header is damaged (key derivation parameters)", s.path)
	}
	h := &header{
		kdf: KDFParams{
			Time:      binary.BigEndian.Uint32(kdfRec[1:5]),
			MemoryKiB: binary.BigEndian.Uint32(kdfRec[5:9]),
			Threads:   kdfRec[9],
		},
		salt:   kdfRec[11:],
		kdfRec: kdfRec,
		keyRec: bytes.Clone(hb.Get(keyWrapped)),
	}
	if err := h.kdf.check(); err != nil {
		return nil, errorf(ErrCorrupt, "%s: store header is damaged: %v", s.path, err)
	}
	if len(h.keyRec) != wrappedLen {
		return nil, errorf(ErrCorrupt, "%s: store header is damaged (wrapped key)", s.path)
	}
	if len(hb.Get(keyMAC)) != sha256.Size {
		return nil, errorf(ErrCorrupt, "%s: store header is damaged (manifest MAC)", s.path)
	}
	for _, b := range [][]byte{bucketValues, bucketManifest, bucketMeta} {
		if btx.Bucket(b) == nil {
			return nil, errorf(ErrCorrupt, "%s: store is missing its %q bucket", s.path, b)
		}
	}
	return h, nil
}

// valueRecord is one sealed credential:
// u8 1 | u64 version | i64 created | i64 updated (unix ns) | 24-byte nonce | ciphertext+tag.
type valueRecord struct {
	version          uint64
	created, updated int64
	nonce, sealed    []byte
}

func encodeValue(r valueRecord) []byte {
	b := make([]byte, 0, valueHeaderLen+len(r.sealed))
	b = append(b, valueRecFormat)
	b = binary.BigEndian.AppendUint64(b, r.version)
	b = binary.BigEndian.AppendUint64(b, uint64(r.created))
	b = binary.BigEndian.AppendUint64(b, uint64(r.updated))
	b = append(b, r.nonce...)
	return append(b, r.sealed...)
}

// parseValue aliases b; callers inside a bbolt transaction must not keep it.
func parseValue(name string, b []byte) (valueRecord, error) {
	if len(b) < valueHeaderLen+tagLen+1 || b[0] != valueRecFormat {
		return valueRecord{}, errorf(ErrCorrupt, "record for credential %q is damaged", name)
	}
	return valueRecord{
		version: binary.BigEndian.Uint64(b[1:9]),
		created: int64(binary.BigEndian.Uint64(b[9:17])),
		updated: int64(binary.BigEndian.Uint64(b[17:25])),
		nonce:   b[25:valueHeaderLen],
		sealed:  b[valueHeaderLen:],
	}, nil
}

// valueAD binds a ciphertext to its name and version, so a record cannot
// be moved to another name or replayed as another version.
func valueAD(name string, version uint64) []byte {
	b := binary.BigEndian.AppendUint32(make([]byte, 0, 13+len(name)), FormatVersion)
	b = append(b, byte(len(name)))
	b = append(b, name...)
	return binary.BigEndian.AppendUint64(b, version)
}

type metaRecord struct {
	lastResolved int64
	count        uint64
}

func encodeMeta(m metaRecord) []byte {
	b := append(make([]byte, 0, metaRecLen), metaRecFormat)
	b = binary.BigEndian.AppendUint64(b, uint64(m.lastResolved))
	return binary.BigEndian.AppendUint64(b, m.count)
}

func parseMeta(name string, b []byte) (metaRecord, error) {
	if b == nil {
		return metaRecord{}, nil
	}
	if len(b) != metaRecLen || b[0] != metaRecFormat {
		return metaRecord{}, errorf(ErrCorrupt, "metadata for credential %q is damaged", name)
	}
	return metaRecord{
		lastResolved: int64(binary.BigEndian.Uint64(b[1:9])),
		count:        binary.BigEndian.Uint64(b[9:17]),
	}, nil
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// manifest is the authenticated list of what the store holds.
type manifest struct {
	kdfRec, keyRec []byte
	names          []string // sorted
	entries        map[string]manifestEntry
}

type manifestEntry struct {
	version uint64
	hash    [sha256.Size]byte // sha256 of the whole value record
}

func encodeEntry(e manifestEntry) []byte {
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, manifestEntLen), e.version), e.hash[:]...)
}

func (m *manifest) clone() *manifest {
	c := &manifest{kdfRec: m.kdfRec, keyRec: m.keyRec, names: slices.Clone(m.names), entries: make(map[string]manifestEntry, len(m.entries)+1)}
	for k, v := range m.entries {
		c.entries[k] = v
	}
	return c
}

func (m *manifest) set(name string, e manifestEntry) {
	if _, ok := m.entries[name]; !ok {
		i, _ := slices.BinarySearch(m.names, name)
		m.names = slices.Insert(m.names, i, name)
	}
	m.entries[name] = e
}

func (m *manifest) remove(name string) {
	if i, ok := slices.BinarySearch(m.names, name); ok {
		m.names = slices.Delete(m.names, i, i+1)
	}
	delete(m.entries, name)
}

// mac covers the header records and every (name, version, record hash).
func (m *manifest) mac(key []byte) []byte {
	h := hmac.New(sha256.New, key)
	var buf []byte
	buf = append(buf, infoManifest...)
	buf = append(buf, 0)
	buf = binary.BigEndian.AppendUint32(buf, FormatVersion)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(m.kdfRec)))
	buf = append(buf, m.kdfRec...)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(m.keyRec)))
	buf = append(buf, m.keyRec...)
	buf = binary.BigEndian.AppendUint64(buf, uint64(len(m.names)))
	h.Write(buf)
	for _, n := range m.names {
		e := m.entries[n]
		buf = append(buf[:0], byte(len(n)))
		buf = append(buf, n...)
		buf = binary.BigEndian.AppendUint64(buf, e.version)
		buf = append(buf, e.hash[:]...)
		h.Write(buf)
	}
	return h.Sum(nil)
}

func (m *manifest) equal(o *manifest) bool {
	return bytes.Equal(m.kdfRec, o.kdfRec) && bytes.Equal(m.keyRec, o.keyRec) &&
		slices.Equal(m.names, o.names) && mapsEqual(m.entries, o.entries)
}

func mapsEqual(a, b map[string]manifestEntry) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// readManifest loads the manifest entries as stored; the caller verifies
// the MAC before trusting any of it.
func readManifest(s *Store, btx *bolt.Tx, h *header) (*manifest, error) {
	m := &manifest{kdfRec: h.kdfRec, keyRec: h.keyRec, entries: map[string]manifestEntry{}}
	c := btx.Bucket(bucketManifest).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		name := string(k)
		if ValidName(name) != nil || len(v) != manifestEntLen {
			return nil, errorf(ErrCorrupt, "%s: integrity check failed: the manifest is damaged", s.path)
		}
		e := manifestEntry{version: binary.BigEndian.Uint64(v[:8])}
		copy(e.hash[:], v[8:])
		m.names = append(m.names, name)
		m.entries[name] = e
	}
	return m, nil
}

// checkValues compares the values bucket with a verified manifest and names
// every credential that differs.
func checkValues(s *Store, btx *bolt.Tx, m *manifest) error {
	var problems []string
	seen := 0
	c := btx.Bucket(bucketValues).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		name := string(k)
		e, ok := m.entries[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("credential %.140q was added outside faciofs", name))
			continue
		}
		seen++
		if sha256.Sum256(v) == e.hash {
			continue
		}
		rec, err := parseValue(name, v)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("record of credential %q is damaged", name))
		case rec.version < e.version:
			problems = append(problems, fmt.Sprintf("credential %q was rolled back from version %d to %d", name, e.version, rec.version))
		case rec.version > e.version:
			problems = append(problems, fmt.Sprintf("credential %q has version %d, the manifest says %d", name, rec.version, e.version))
		default:
			problems = append(problems, fmt.Sprintf("record of credential %q was modified or swapped", name))
		}
	}
	if seen < len(m.names) {
		vb := btx.Bucket(bucketValues)
		for _, n := range m.names {
			if vb.Get([]byte(n)) == nil {
				problems = append(problems, fmt.Sprintf("credential %q was removed outside faciofs", n))
			}
		}
	}
	if len(problems) == 0 {
		return nil
	}
	msg := strings.Join(problems[:min(len(problems), 5)], "; ")
	if len(problems) > 5 {
		msg += fmt.Sprintf("; and %d more", len(problems)-5)
	}
	return errorf(ErrCorrupt, "%s: integrity check failed: %s", s.path, msg)
}

// listMeta walks the values bucket (no decryption) and the counters.
func listMeta(s *Store, btx *bolt.Tx) ([]Meta, error) {
	vb, mb := btx.Bucket(bucketValues), btx.Bucket(bucketMeta)
	var out []Meta
	c := vb.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		m, err := buildMeta(s, string(k), v, mb.Get(k))
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func oneMeta(s *Store, btx *bolt.Tx, name string) (Meta, error) {
	v := btx.Bucket(bucketValues).Get([]byte(name))
	if v == nil {
		return Meta{}, errorf(ErrNotFound, "credential %s not found", name)
	}
	return buildMeta(s, name, v, btx.Bucket(bucketMeta).Get([]byte(name)))
}

func buildMeta(s *Store, name string, v, mv []byte) (Meta, error) {
	rec, err := parseValue(name, v)
	if err != nil {
		return Meta{}, err
	}
	mr, err := parseMeta(name, mv)
	if err != nil {
		return Meta{}, err
	}
	if p, ok := s.counters.peek(name); ok {
		mr.count += p.n
		mr.lastResolved = max(mr.lastResolved, p.last)
	}
	return Meta{
		Name:         name,
		Created:      unixTime(rec.created),
		Updated:      unixTime(rec.updated),
		Version:      rec.version,
		LastResolved: unixTime(mr.lastResolved),
		ResolveCount: mr.count,
	}, nil
}
