package kubernetes

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// allocIndex indexes the informer's Pods by their alloc-id label.
const allocIndex = "alloc"

// podWatch is the driver's shared informer over its Pods (namespace-scoped,
// label-filtered) and a fan-out of "worker X's Pod changed" to whoever waits
// on it: CreateWorker waiting for Running, RunStep watching for its Pod to
// go. It starts on first use, so New contacts nothing, and stops with stop.
// It is safe for concurrent use.
type podWatch struct {
	cs  kubernetes.Interface
	ns  string
	sel labels.Selector
	log *slog.Logger

	startOnce sync.Once
	inf       cache.SharedIndexInformer
	done      chan struct{} // closed by stop
	stopOnce  sync.Once

	mu       sync.Mutex
	subs     map[string]map[chan struct{}]struct{} // by worker ID
	watchErr error                                 // the informer's last list/watch failure
}

func newPodWatch(cs kubernetes.Interface, ns string, sel labels.Selector, log *slog.Logger) *podWatch {
	return &podWatch{cs: cs, ns: ns, sel: sel, log: log, done: make(chan struct{}), subs: map[string]map[chan struct{}]struct{}{}}
}

// start runs the informer once.
func (w *podWatch) start() {
	w.startOnce.Do(func() {
		lw := cache.NewFilteredListWatchFromClient(w.cs.CoreV1().RESTClient(), "pods", w.ns, func(o *metav1.ListOptions) {
			o.LabelSelector = w.sel.String()
		})
		w.inf = cache.NewSharedIndexInformer(lw, &corev1.Pod{}, 0, cache.Indexers{allocIndex: func(obj any) ([]string, error) {
			if p, ok := obj.(*corev1.Pod); ok && p.Labels[labelAllocID] != "" {
				return []string{p.Labels[labelAllocID]}, nil
			}
			return nil, nil
		}})
		_ = w.inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
			w.mu.Lock()
			w.watchErr = err
			w.mu.Unlock()
			w.log.Debug("pod watch failed; retrying", "err", err)
		})
		_, _ = w.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    w.changed,
			UpdateFunc: func(_, obj any) { w.changed(obj) },
			DeleteFunc: w.changed,
		})
		go w.inf.Run(w.done)
	})
}

// stop stops the informer; waiters see no more changes.
func (w *podWatch) stop() {
	w.stopOnce.Do(func() { close(w.done) })
}

// changed tells the subscribers of obj's worker.
func (w *podWatch) changed(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	id := p.Labels[labelAllocID]
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.watchErr != nil {
		w.watchErr = nil // events flow again
	}
	for ch := range w.subs[id] {
		select {
		case ch <- struct{}{}:
		default: // a change is already pending; the waiter reads the cache
		}
	}
}

// subscribe returns a channel that receives (coalesced) notice of every
// change to worker id's Pods, and a func to unsubscribe.
func (w *podWatch) subscribe(id string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	if w.subs[id] == nil {
		w.subs[id] = map[chan struct{}]struct{}{}
	}
	w.subs[id][ch] = struct{}{}
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		delete(w.subs[id], ch)
		if len(w.subs[id]) == 0 {
			delete(w.subs, id)
		}
		w.mu.Unlock()
	}
}

// synced starts the informer and waits up to limit for its first list. The
// error says why the watch does not work when it can tell.
func (w *podWatch) synced(ctx context.Context, limit time.Duration) error {
	w.start()
	if w.inf.HasSynced() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if cache.WaitForCacheSync(ctx.Done(), w.inf.HasSynced) {
		return nil
	}
	w.mu.Lock()
	why := w.watchErr
	w.mu.Unlock()
	if why == nil {
		why = ctx.Err()
	}
	return fmt.Errorf("cannot list and watch pods labelled %s in namespace %q within %v: %w", w.sel, w.ns, limit, why)
}

// pods returns the cached Pods of worker id. They are the informer's:
// read-only.
func (w *podWatch) pods(id string) []*corev1.Pod {
	objs, err := w.inf.GetIndexer().ByIndex(allocIndex, id)
	if err != nil {
		return nil
	}
	out := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		if p, ok := o.(*corev1.Pod); ok {
			out = append(out, p)
		}
	}
	return out
}

// pod returns the cached Pod named name, or nil.
func (w *podWatch) pod(name string) *corev1.Pod {
	obj, ok, err := w.inf.GetIndexer().GetByKey(w.ns + "/" + name)
	if err != nil || !ok {
		return nil
	}
	p, _ := obj.(*corev1.Pod)
	return p
}
