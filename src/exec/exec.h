/*
 * exec.h — what the executors layer (thread pools, the process pool) offers the
 * layers above it: the hooks weft_run calls. It may use core/ and below.
 */
#ifndef WEFT_EXEC_H
#define WEFT_EXEC_H

#include "core/core.h"

/* pool.c: weft_run's main has returned and every task is done. Waits (running the
 * loop) until each call this loop submitted to a thread pool is back, and leaves
 * the default pool, which its last user shuts down. */
void weft__pools_loop_closing(weft_loop *L);

#endif
