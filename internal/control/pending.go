package control

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Kinds of pending item. The mechanism is general: a later gate (say, a
// first resolve by a new consumer) adds a kind and what approving it does.
const (
	KindCredential = "credential" // a request for a credential; `secret set` fulfils it
	KindDelete     = "delete"     // a deletion; approving it deletes
)

// DefaultExpiry is how long an item waits for a human.
const DefaultExpiry = time.Hour

// Item is one pending request or approval.
type Item struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind"`
	Name    string    `json:"name"`
	Label   string    `json:"label,omitempty"`
	Who     Who       `json:"who"`
	When    time.Time `json:"when"`
	Expires time.Time `json:"expires"`
}

// pendingFile is the JSON file beside the store, mode 0600, changed under
// an exclusive flock so that a mount and a direct command never race.
type pendingFile struct {
	Next  uint64 `json:"next"`
	Items []Item `json:"items"`
}

// PendingPath is where the items for the store at storePath live.
func PendingPath(storePath string) string { return canonical(storePath) + ".pending.json" }

// maxPendingFile bounds what is read back (a full file is an error).
const maxPendingFile = 4 << 20

// maxPendingItems bounds how many items may wait at once, so that an agent
// asking in a loop cannot grow the file without limit.
const maxPendingItems = 1000

// withPending runs fn on the items, under the lock, expired items dropped
// first (returned in expired); if fn returns true the file is rewritten.
func withPending(path string, fn func(p *pendingFile) (bool, error)) (expired []Item, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pending items: %w", err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return nil, fmt.Errorf("pending items: lock %s: %w", path, err)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxPendingFile+1))
	if err != nil {
		return nil, fmt.Errorf("pending items: %w", err)
	}
	if len(b) > maxPendingFile {
		return nil, fmt.Errorf("pending items: %s is larger than %d bytes", path, maxPendingFile)
	}
	var p pendingFile
	if len(b) > 0 {
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, fmt.Errorf("pending items: %s does not parse: %v", path, err)
		}
	}
	now := time.Now()
	kept := p.Items[:0:0]
	for _, it := range p.Items {
		if now.After(it.Expires) {
			expired = append(expired, it)
			continue
		}
		kept = append(kept, it)
	}
	p.Items = kept
	changed, err := fn(&p)
	if err != nil {
		return expired, err
	}
	if !changed && len(expired) == 0 {
		return expired, nil
	}
	out, err := json.MarshalIndent(&p, "", "  ")
	if err != nil {
		return expired, err
	}
	out = append(out, '\n')
	if err := f.Truncate(0); err != nil {
		return expired, err
	}
	if _, err := f.WriteAt(out, 0); err != nil {
		return expired, err
	}
	return expired, f.Sync()
}

// add appends a new item, or returns the one of the same kind and name
// already pending (again true).
func (p *pendingFile) add(it Item) (Item, bool, error) {
	for _, old := range p.Items {
		if old.Kind == it.Kind && old.Name == it.Name {
			return old, true, nil
		}
	}
	if len(p.Items) >= maxPendingItems {
		return Item{}, false, errorf(KindRuntime, "too many pending items (%d); a human must approve or deny some first", len(p.Items))
	}
	p.Next++
	it.ID = strconv.FormatUint(p.Next, 10)
	p.Items = append(p.Items, it)
	return it, false, nil
}

// take removes and returns the item with id.
func (p *pendingFile) take(id string) (Item, bool) {
	for i, it := range p.Items {
		if it.ID == id {
			p.Items = append(p.Items[:i], p.Items[i+1:]...)
			return it, true
		}
	}
	return Item{}, false
}

func (p *pendingFile) find(id string) (Item, bool) {
	for _, it := range p.Items {
		if it.ID == id {
			return it, true
		}
	}
	return Item{}, false
}

// takeAll removes every item of kind for name.
func (p *pendingFile) takeAll(kind, name string) []Item {
	var out []Item
	kept := p.Items[:0:0]
	for _, it := range p.Items {
		if it.Kind == kind && it.Name == name {
			out = append(out, it)
			continue
		}
		kept = append(kept, it)
	}
	p.Items = kept
	return out
}

func sortItems(items []Item) {
	sort.Slice(items, func(i, j int) bool {
		a, _ := strconv.ParseUint(items[i].ID, 10, 64)
		b, _ := strconv.ParseUint(items[j].ID, 10, 64)
		return a < b
	})
}
