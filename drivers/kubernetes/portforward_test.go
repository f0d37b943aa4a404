package kubernetes_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ciplat/ciplat/drivers"
	"github.com/ciplat/ciplat/drivers/kubernetes"
)

// TestDriver_PortForward: a connection to the local port reaches the
// Pod's port. kwok forwards a Pod's port to an address of its host, named
// by a PortForward object; the test serves an echo there.
func TestDriver_PortForward(t *testing.T) {
	c := needCluster(t)
	if !c.kwok {
		t.Skip("needs kwok's PortForward objects to give the Pod a port to reach")
	}
	d := newDriver(t, c.driver, kubernetes.Config{Workspace: c.workspace(t)})
	h := create(t, d, drivers.WorkerConfig{ID: randID("pf"), Image: testImage})

	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			conn, err := echo.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				line, _ := bufio.NewReader(conn).ReadString('\n')
				fmt.Fprintf(conn, "echo %s", line)
			}()
		}
	}()
	rc, err := clientcmd.BuildConfigFromFlags("", c.admin)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	gvr := schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "portforwards"}
	pf := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "PortForward",
		"metadata": map[string]any{"name": h.State["pod"], "namespace": "ciplat"},
		"spec": map[string]any{"forwards": []any{map[string]any{
			"ports":  []any{int64(8080)},
			"target": map[string]any{"port": int64(echo.Addr().(*net.TCPAddr).Port), "address": "127.0.0.1"},
		}}},
	}}
	if _, err := dyn.Resource(gvr).Namespace("ciplat").Create(t.Context(), pf, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create kwok PortForward: %v", err)
	}
	t.Cleanup(func() {
		dyn.Resource(gvr).Namespace("ciplat").Delete(context.Background(), h.State["pod"], metav1.DeleteOptions{})
	})

	ctx, cancel := context.WithCancel(t.Context())
	ports := make(chan int, 1)
	done := make(chan error, 1)
	go func() { done <- d.PortForward(ctx, h, 0, 8080, func(p int) { ports <- p }) }()
	var local int
	select {
	case local = <-ports:
	case err := <-done:
		t.Fatalf("PortForward: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("PortForward not ready after 20s")
	}
	// kwok reads its PortForward objects through an informer: the first
	// connections may come before it has this one.
	deadline := time.Now().Add(20 * time.Second)
	var got string
	for {
		got, err = roundTrip(fmt.Sprintf("127.0.0.1:%d", local), "ping\n")
		if err == nil && got == "echo ping\n" || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got != "echo ping\n" {
		t.Errorf("through the forward: %q, %v; want %q", got, err, "echo ping\n")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("PortForward after cancel: %v", err)
	}

	if err := d.DestroyWorker(t.Context(), h); err != nil {
		t.Fatal(err)
	}
	if err := d.PortForward(t.Context(), h, 0, 8080, nil); !errors.Is(err, drivers.ErrWorkerNotFound) {
		t.Errorf("PortForward to a destroyed worker: %v, want ErrWorkerNotFound", err)
	}
}

// roundTrip sends msg to addr and reads one line back.
func roundTrip(addr, msg string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(msg)); err != nil {
		return "", err
	}
	return bufio.NewReader(conn).ReadString('\n')
}
