// An HTTP client that leaks response bodies, the server it calls, and the
// healthy twin of the client, on Go's net/http.
//
//	body_leak READY server PORT      an http.Server that closes idle keep-alive
//	                                 connections after one second; 16 KiB bodies
//	body_leak READY leak URL N       N GETs whose bodies are never read nor closed
//	body_leak READY close URL N      N GETs, each body read to EOF and closed
//
// Each says it is ready by writing {"pid": PID} to READY (by rename) once
// its requests are done, then keeps running.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

func ready(path string) {
	b, _ := json.Marshal(map[string]int{"pid": os.Getpid()})
	if err := os.WriteFile(path+".tmp", b, 0o644); err != nil {
		panic(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		panic(err)
	}
}

func serve(readyPath, port string) {
	body := bytes.Repeat([]byte("x"), 16<<10)
	srv := &http.Server{
		Addr:        "127.0.0.1:" + port,
		IdleTimeout: time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.Write(body)
		}),
	}
	go func() {
		for {
			if c, err := http.Get("http://" + srv.Addr + "/"); err == nil {
				io.Copy(io.Discard, c.Body)
				c.Body.Close()
				ready(readyPath)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	panic(srv.ListenAndServe())
}

func get(url string, n int, close bool) []*http.Response {
	var held []*http.Response
	for i := 0; i < n; i++ {
		resp, err := http.Get(url)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if close {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		} else {
			held = append(held, resp) // the bug: resp.Body is never closed
		}
	}
	return held
}

func main() {
	readyPath, mode := os.Args[1], os.Args[2]
	if mode == "server" {
		serve(readyPath, os.Args[3])
	}
	n, _ := strconv.Atoi(os.Args[4])
	held := get(os.Args[3], n, mode == "close")
	ready(readyPath)
	for {
		time.Sleep(time.Hour)
		fmt.Fprintln(io.Discard, len(held))
	}
}
