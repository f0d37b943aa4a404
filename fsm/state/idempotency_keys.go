package state

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/ciplat/ciplat/fsm/structs"
)

// TableIdempotencyKeys holds the Idempotency-Keys of pipeline submits until
// they expire (structs.IdempotencyKey), keyed by (namespace, key).
const TableIdempotencyKeys = "idempotency_keys"

// idempotencyKeysTable is the table's schema: "id" is (Namespace, Key);
// "expires" orders keys by ExpiresAt, so a sweep reads only expired ones.
func idempotencyKeysTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: TableIdempotencyKeys, Indexes: map[string]*memdb.IndexSchema{
		"id":      {Name: "id", Unique: true, Indexer: namespacedKeyIndex{}},
		"expires": {Name: "expires", Indexer: expiresIndex{}},
	}}
}

// namespacedKeyIndex indexes an *IdempotencyKey by namespace and key, each
// ended by a NUL byte (neither may hold one: keys are printable ASCII), so
// "" is a namespace like any other. Lookups pass (namespace, key).
type namespacedKeyIndex struct{}

func (namespacedKeyIndex) FromObject(raw any) (bool, []byte, error) {
	k, ok := raw.(*structs.IdempotencyKey)
	if !ok {
		return false, nil, fmt.Errorf("idempotency key index: %T is not an *IdempotencyKey", raw)
	}
	if k.Key == "" {
		return false, nil, nil
	}
	return true, namespacedKey(k.Namespace, k.Key), nil
}

func (namespacedKeyIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("idempotency key index: want (namespace, key), got %d arguments", len(args))
	}
	ns, ok1 := args[0].(string)
	key, ok2 := args[1].(string)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("idempotency key index: want two strings, got %T, %T", args[0], args[1])
	}
	return namespacedKey(ns, key), nil
}

func namespacedKey(ns, key string) []byte {
	b := make([]byte, 0, len(ns)+len(key)+2)
	b = append(b, ns...)
	b = append(b, 0)
	b = append(b, key...)
	return append(b, 0)
}

// expiresIndex indexes an *IdempotencyKey by ExpiresAt as big-endian Unix
// nanoseconds (clamped to [1970, 2262]), so iteration is expiry order.
type expiresIndex struct{}

func (expiresIndex) FromObject(raw any) (bool, []byte, error) {
	k, ok := raw.(*structs.IdempotencyKey)
	if !ok {
		return false, nil, fmt.Errorf("idempotency expires index: %T is not an *IdempotencyKey", raw)
	}
	return true, expiresBytes(k.ExpiresAt), nil
}

func (expiresIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("idempotency expires index: want one time, got %d arguments", len(args))
	}
	t, ok := args[0].(time.Time)
	if !ok {
		return nil, fmt.Errorf("idempotency expires index: want a time.Time, got %T", args[0])
	}
	return expiresBytes(t), nil
}

func expiresBytes(t time.Time) []byte {
	var n uint64
	switch {
	case t.Unix() < 0:
	case t.Unix() >= math.MaxInt64/int64(time.Second):
		n = math.MaxUint64
	default:
		n = uint64(t.UnixNano())
	}
	return binary.BigEndian.AppendUint64(nil, n)
}

// IdempotencyKey returns the key record of (namespace, key), expired or
// not, or nil.
func (s *StateStore) IdempotencyKey(ws memdb.WatchSet, namespace, key string) (*structs.IdempotencyKey, error) {
	return first[structs.IdempotencyKey](s.db.Txn(false), ws, TableIdempotencyKeys, "id", namespace, key)
}

// IdempotencyKeys returns every key record by (namespace, key).
func (s *StateStore) IdempotencyKeys(ws memdb.WatchSet) ([]*structs.IdempotencyKey, error) {
	return list[structs.IdempotencyKey](s.db.Txn(false), ws, TableIdempotencyKeys, "id")
}

// EarliestIdempotencyExpiry returns the soonest ExpiresAt of any key, and
// false when there is no key: the leader sweeps when it has passed.
func (s *StateStore) EarliestIdempotencyExpiry(ws memdb.WatchSet) (time.Time, bool, error) {
	k, err := first[structs.IdempotencyKey](s.db.Txn(false), ws, TableIdempotencyKeys, "expires")
	if err != nil || k == nil {
		return time.Time{}, false, err
	}
	return k.ExpiresAt, true, nil
}

// IdempotencyKey returns the key record of (namespace, key), or nil.
func (t *WriteTxn) IdempotencyKey(namespace, key string) (*structs.IdempotencyKey, error) {
	return first[structs.IdempotencyKey](t.txn, nil, TableIdempotencyKeys, "id", namespace, key)
}

// UpsertIdempotencyKey stores a key record, replacing the one of the same
// (namespace, key); a replaced record keeps its CreateIndex only when it
// names the same pipeline.
func (t *WriteTxn) UpsertIdempotencyKey(k *structs.IdempotencyKey) error {
	if k == nil || k.Key == "" || k.PipelineID == "" {
		return fmt.Errorf("upsert idempotency key: missing record, key or pipeline ID")
	}
	old, err := t.IdempotencyKey(k.Namespace, k.Key)
	if err != nil {
		return err
	}
	same := old != nil && old.PipelineID == k.PipelineID
	var oldCreate uint64
	if same {
		oldCreate = old.CreateIndex
	}
	t.setIndexes(same, oldCreate, &k.CreateIndex, &k.ModifyIndex)
	return t.insert(TableIdempotencyKeys, k)
}

// DeleteExpiredIdempotencyKeys removes the keys expired at cutoff
// (ExpiresAt at or before it), soonest first, at most limit of them (0:
// no limit), and returns how many it removed. The order and the limit
// depend only on the stored rows, so every server removes the same keys.
func (t *WriteTxn) DeleteExpiredIdempotencyKeys(cutoff time.Time, limit int) (int, error) {
	it, err := t.txn.Get(TableIdempotencyKeys, "expires")
	if err != nil {
		return 0, fmt.Errorf("sweep idempotency keys: %w", err)
	}
	// Collect first: deleting while a memdb iterator walks the same
	// index is not allowed.
	var expired []*structs.IdempotencyKey
	for raw := it.Next(); raw != nil; raw = it.Next() {
		k := raw.(*structs.IdempotencyKey)
		if !k.Expired(cutoff) || (limit > 0 && len(expired) == limit) {
			break
		}
		expired = append(expired, k)
	}
	for _, k := range expired {
		if err := t.txn.Delete(TableIdempotencyKeys, k); err != nil {
			return 0, fmt.Errorf("sweep idempotency key %q: %w", k.Key, err)
		}
	}
	if len(expired) > 0 {
		t.touched[TableIdempotencyKeys] = true
	}
	return len(expired), nil
}
