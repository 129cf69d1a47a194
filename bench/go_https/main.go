// w5_https_server (Go) — workload W5 over TLS with Go's net/http, the peer of
// bench/w5_https_server.c in bench/https_compare.sh: the same hello-world response on
// 127.0.0.1:PORT, keep-alive, TLS 1.3 at least, HTTP/1.1 only (as wrk speaks).
//
// usage: go_w5_https_server PORT CERT_PEM KEY_PEM
package main

import (
	"crypto/tls"
	"log"
	"net/http"
	"os"
)

func main() {
	if len(os.Args) != 4 {
		log.Fatal("usage: go_w5_https_server PORT CERT_PEM KEY_PEM")
	}
	hello := []byte("Hello, World!")
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(hello)
	})
	srv := &http.Server{
		Addr:         "127.0.0.1:" + os.Args[1],
		Handler:      handler,
		TLSConfig:    &tls.Config{MinVersion: tls.VersionTLS13},
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){}, // no HTTP/2
	}
	log.Fatal(srv.ListenAndServeTLS(os.Args[2], os.Args[3]))
}
