// go_spawn — W9 with Go's os/exec, the peer of bench/w9_spawn.c in
// bench/spawn_compare.sh: CONC goroutines each run /bin/true (exec.Command's nil
// Stdin, Stdout and Stderr are /dev/null) and wait for it, until N have run; every
// exit status must be 0. The clock runs from before the first start until the last
// child is reaped.
//
// usage: go_spawn [N [CONC [PARENT_MB]]]   (defaults 2000 8 0)
// prints: procs go n=N conc=CONC parent_mb=MB wall_s=.. procs_per_s=.. peak_rss_kb=..
package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func arg(i int, fallback int64) int64 {
	if len(os.Args) <= i {
		return fallback
	}
	v, err := strconv.ParseInt(os.Args[i], 10, 64)
	if err != nil || v < 0 {
		fmt.Fprintf(os.Stderr, "go_spawn: argument %d must be a whole number, got %q\n", i, os.Args[i])
		os.Exit(2)
	}
	return v
}

func main() {
	n, conc, parentMB := arg(1, 2000), arg(2, 8), arg(3, 0)
	var ballast []byte
	if parentMB > 0 {
		ballast = make([]byte, parentMB<<20)
		for i := range ballast {
			ballast[i] = 1
		}
	}
	var started, failed int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := int64(0); w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for atomic.AddInt64(&started, 1) <= n {
				if err := exec.Command("/bin/true").Run(); err != nil {
					fmt.Fprintf(os.Stderr, "go_spawn: %v\n", err)
					atomic.AddInt64(&failed, 1)
				}
			}
		}()
	}
	wg.Wait()
	wall := time.Since(t0).Seconds()
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "go_spawn: %d children failed\n", failed)
		os.Exit(1)
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	fmt.Printf("procs go n=%d conc=%d parent_mb=%d wall_s=%.6g procs_per_s=%.1f peak_rss_kb=%d\n", n, conc,
		parentMB, wall, float64(n)/wall, ru.Maxrss)
	_ = ballast[:0]
}
