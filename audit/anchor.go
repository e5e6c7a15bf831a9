package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// The anchor is the newest sealed record's seq and line hash, MAC'd, kept
// in a file outside the log directory. Cutting records off the end of the
// log leaves the anchor pointing past the end, which Verify reports.
//
// The file has two fixed-size slots, written alternately in place (seq%2)
// after the batch they describe is fsynced; the anchor is the slot with the
// higher seq. A torn or lost anchor write therefore leaves the previous slot
// intact, and the anchor is never ahead of the log on disk. The anchor is
// not fsynced itself: after a power loss it may lag the log by the last
// batches, which only narrows what truncation detection covers. A new
// anchor is first written with the log's state before the batch (seq 0
// for a new log), so that no crash leaves sealed records without one.
type anchor struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
	MAC  string `json:"mac"`
}

const anchorSlot = 256

func anchorMAC(key []byte, seq uint64, hash string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("faciofs audit anchor v1\x00"))
	m.Write(binary.BigEndian.AppendUint64(nil, seq))
	m.Write([]byte(hash))
	return hex.EncodeToString(m.Sum(nil))
}

func openAnchor(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}

func writeAnchor(f *os.File, key []byte, seq uint64, hash string) error {
	b, _ := json.Marshal(anchor{Seq: seq, Hash: hash, MAC: anchorMAC(key, seq, hash)})
	slot := bytes.Repeat([]byte{' '}, anchorSlot)
	copy(slot, b)
	slot[anchorSlot-1] = '\n'
	_, err := f.WriteAt(slot, int64(seq%2)*anchorSlot)
	return err
}

// readAnchor reads the anchor; ok is false when there is none. With key,
// a slot that fails its MAC is an error.
func readAnchor(path string, key []byte) (a anchor, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return a, false, nil
	}
	if err != nil {
		return a, false, err
	}
	if len(b) == 0 || len(b) > 2*anchorSlot {
		return a, true, fmt.Errorf("the anchor %s is damaged", path)
	}
	found := false
	for off := 0; off < len(b); off += anchorSlot {
		var s anchor
		slot := bytes.Trim(b[off:min(off+anchorSlot, len(b))], " \n\x00")
		if len(slot) == 0 {
			continue // not written yet
		}
		found = true
		if err := json.Unmarshal(slot, &s); err != nil || (len(s.Hash) != hashHexLen && !(s.Seq == 0 && s.Hash == "")) {
			return a, true, fmt.Errorf("the anchor %s is damaged", path)
		}
		if len(key) > 0 && s.MAC != anchorMAC(key, s.Seq, s.Hash) {
			return a, true, fmt.Errorf("the anchor %s fails its MAC: it was forged or edited", path)
		}
		if s.Seq >= a.Seq {
			a = s
		}
	}
	if !found {
		return a, true, fmt.Errorf("the anchor %s is damaged", path)
	}
	return a, true, nil
}
