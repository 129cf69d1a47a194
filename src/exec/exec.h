/*
 * exec.h — what the executors layer (thread pools, the process pool) offers the
 * layers above it: the hooks weft_run calls. It may use core/ and below.
 */
#ifndef WEFT__SRC_EXEC_H
#define WEFT__SRC_EXEC_H

#include "core/core.h"

/* pool.c: the loop's port to the thread pools. Its drain runs when weft_run's
 * main has returned and every task is done: it waits (running the loop) until each
 * call this loop submitted to a thread pool is back, and leaves the default pool,
 * which its last user shuts down. */
extern const weft__module weft__module_pools;

#endif
