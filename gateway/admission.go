package gateway

import (
	"container/list"
	"context"
	"sync"

	"github.com/kronos-gateway/kronos-gateway/internal/infer"
)

// admission bounds the forecasts that run at once (KRONOS_MAX_CONCURRENCY)
// and queues the excess, first in first out, up to KRONOS_QUEUE_SIZE. A
// forecast that finds the queue full is refused at once (429), so that
// excess load is answered quickly instead of piling up; one that waits
// past its context's end leaves the queue.
//
// A slot freed by a finishing forecast goes straight to the head of the
// queue, so a newcomer never overtakes a queued forecast.
type admission struct {
	limit, capacity int
	m               *metrics // may be nil (tests)

	mu      sync.Mutex
	running int
	waiting list.List // of *waiter, oldest first
}

// waiter is one queued forecast; ready is closed when it is granted a slot
// (granted is then true, under admission.mu).
type waiter struct {
	ready   chan struct{}
	granted bool
}

func newAdmission(limit, capacity int, m *metrics) *admission {
	return &admission{limit: limit, capacity: capacity, m: m}
}

// errQueueFull is the refusal of a forecast when every slot is busy and
// the queue is full.
var errQueueFull = infer.Errorf(infer.KindOverloaded,
	"the server is at capacity (KRONOS_MAX_CONCURRENCY forecasts running and KRONOS_QUEUE_SIZE waiting); retry later")

// acquire takes a slot, waiting in the queue while ctx allows. It returns
// the function that frees the slot (call it exactly once), errQueueFull
// when the queue is full, or ctx's error (converted by
// infer.FromContext) when ctx ended while waiting.
func (q *admission) acquire(ctx context.Context) (release func(), err error) {
	q.mu.Lock()
	if q.running < q.limit && q.waiting.Len() == 0 {
		q.running++
		q.mu.Unlock()
		return q.releaser(), nil
	}
	if q.waiting.Len() >= q.capacity {
		q.mu.Unlock()
		return nil, errQueueFull
	}
	w := &waiter{ready: make(chan struct{})}
	e := q.waiting.PushBack(w)
	q.mu.Unlock()
	if q.m != nil {
		q.m.queued()
		defer q.m.dequeued()
	}

	select {
	case <-w.ready:
		return q.releaser(), nil
	case <-ctx.Done():
	}
	q.mu.Lock()
	if w.granted {
		// The slot arrived together with the end of ctx: pass it on.
		q.mu.Unlock()
		q.releaser()()
	} else {
		q.waiting.Remove(e)
		q.mu.Unlock()
	}
	return nil, infer.FromContext(ctx.Err())
}

// releaser returns the function that frees one slot: it goes to the oldest
// waiter, or back to the pool.
func (q *admission) releaser() func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			q.mu.Lock()
			defer q.mu.Unlock()
			if front := q.waiting.Front(); front != nil {
				w := q.waiting.Remove(front).(*waiter)
				w.granted = true
				close(w.ready)
				return
			}
			q.running--
		})
	}
}

// state reports the forecasts running and waiting (tests, health).
func (q *admission) state() (running, waiting int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.running, q.waiting.Len()
}
