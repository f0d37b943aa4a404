package scheduler

import "math/rand/v2"

// nodeSource visits every index of a node slice exactly once, starting at a
// random offset and stepping by a random stride coprime with the slice's
// length. Each placement thus samples the cluster in a different order (Nomad
// shuffles its node list for the same reason) without copying, shuffling or
// sorting the shared slice. It is deterministic given the rng.
type nodeSource struct {
	n, next, stride, left int
}

// newNodeSource draws the offset and stride for a slice of n nodes.
func newNodeSource(n int, rng *rand.Rand) nodeSource {
	s := nodeSource{n: n, left: n, stride: 1}
	if n <= 1 {
		return s
	}
	s.next = rng.IntN(n)
	// About 60% of strides are coprime with n; after a few misses fall back
	// to 1, which always is.
	for range 8 {
		if st := 1 + rng.IntN(n-1); gcd(st, n) == 1 {
			s.stride = st
			break
		}
	}
	return s
}

// Next returns the next index, or false once every index was returned.
func (s *nodeSource) Next() (int, bool) {
	if s.left == 0 {
		return 0, false
	}
	i := s.next
	s.next += s.stride
	if s.next >= s.n {
		s.next -= s.n
	}
	s.left--
	return i, true
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
