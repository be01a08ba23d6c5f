// Command hello is a tiny HTTP application for trying the vassal runtime.
//
// It serves on the socket it inherits with the systemd convention (fd 3,
// LISTEN_FDS >= 1 and LISTEN_PID equal to its own pid), which is how a
// vassal hands its http-socket to its workers; otherwise it listens on
// -addr. Every request gets
//
//	hello from NAME pid PID
//
// where NAME is the NAME environment variable ("hello" when unset). On
// SIGTERM or SIGINT it stops accepting, lets the connections it already
// accepted send their request, and finishes the requests in flight (at
// most 5 s): on a socket shared by several workers, nothing a client sent
// is lost.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// listenFDsStart is the first fd of the systemd socket-passing convention.
const listenFDsStart = 3

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on when no socket is inherited")
	flag.Parse()
	log.SetPrefix(fmt.Sprintf("hello[%d] ", os.Getpid()))

	ln, err := listener(*addr)
	if err != nil {
		log.Fatal(err)
	}
	name := os.Getenv("NAME")
	if name == "" {
		name = "hello"
	}
	fresh := &freshConns{conns: map[net.Conn]bool{}}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello from %s pid %d\n", name, os.Getpid())
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ConnState:         fresh.track,
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Printf("serving on %s", ln.Addr())

	select {
	case err := <-served:
		log.Fatal(err)
	case <-ctx.Done():
	}
	// Stop accepting first. The socket is shared with the other workers,
	// which serve whatever is still queued. Connections already accepted
	// get up to a second to send their request: http.Server.Shutdown drops
	// a request it reads after it started, without an answer.
	ln.Close()
	<-served
	fresh.wait(time.Second)
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		log.Printf("shutdown: %v", err)
	}
}

// freshConns tracks the connections whose first request has not been read.
type freshConns struct {
	mu    sync.Mutex
	conns map[net.Conn]bool
}

// track is an http.Server ConnState hook.
func (f *freshConns) track(c net.Conn, state http.ConnState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if state == http.StateNew {
		f.conns[c] = true
	} else {
		delete(f.conns, c)
	}
}

// wait returns once no connection waits for its first request, or after d.
func (f *freshConns) wait(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		f.mu.Lock()
		n := len(f.conns)
		f.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// listener returns the inherited socket when LISTEN_FDS and LISTEN_PID say
// there is one for this process, and a new listener on addr otherwise.
func listener(addr string) (net.Listener, error) {
	n, _ := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	pid, _ := strconv.Atoi(os.Getenv("LISTEN_PID"))
	if n < 1 || pid != os.Getpid() {
		return net.Listen("tcp", addr)
	}
	f := os.NewFile(listenFDsStart, "listen-fd-3")
	if f == nil {
		return nil, errors.New("LISTEN_FDS is set but fd 3 is not open")
	}
	defer f.Close() // FileListener keeps its own copy
	return net.FileListener(f)
}
