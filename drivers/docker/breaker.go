package docker

import (
	"time"

	"github.com/ciplat/ciplat/drivers/internal/breaker"
)

// Calls to the Docker engine go through the shared circuit breaker
// (drivers/internal/breaker); these names keep this package's code short.
type outcome = breaker.Outcome

const (
	succeeded = breaker.Succeeded
	failed    = breaker.Failed
	neutral   = breaker.Neutral
)

// newBreaker returns a closed breaker whose refusals wrap ErrEngineUnavailable.
func newBreaker(threshold int, cooldown time.Duration, now func() time.Time) *breaker.Breaker {
	return breaker.New(threshold, cooldown, now, ErrEngineUnavailable)
}
