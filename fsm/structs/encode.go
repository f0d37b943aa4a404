package structs

import (
	"encoding/json"
	"fmt"
)

// Encode builds a Raft log entry: the message type byte, then the request as JSON.
func Encode(t MessageType, req any) ([]byte, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", t, err)
	}
	out := make([]byte, 0, len(b)+1)
	out = append(out, byte(t))
	return append(out, b...), nil
}

// Decode reads the request body of an entry built by Encode into out.
func Decode(buf []byte, out any) error {
	if len(buf) < 1 {
		return fmt.Errorf("empty log entry")
	}
	return json.Unmarshal(buf[1:], out)
}

// EvalID derives an evaluation's ID deterministically from the Raft index of
// the entry that created it and the job it places, so Apply stays pure.
func EvalID(index uint64, jobID string) string {
	return fmt.Sprintf("%d-%s", index, jobID)
}
