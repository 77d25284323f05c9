package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// servePprof serves Go's profiler on its own listener at addr, apart from
// the API: a performance engineer takes a CPU profile of the server under
// load with
//
//	go tool pprof http://ADDR/debug/pprof/profile?seconds=10
//
// It is off unless serve --pprof is given. The endpoints reveal the
// program's internals and cost CPU while a profile runs, so the address
// should be loopback or otherwise private. The listener is opened before
// serve reports ready, so a bad address fails the start.
func servePprof(addr string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--pprof %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil {
			log.Error("pprof listener stopped", "error", err)
		}
	}()
	log.Info("serving pprof", "addr", ln.Addr().String())
	return nil
}
