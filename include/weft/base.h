/*
 * weft/base.h — what every area of weft's public header shares: the standard headers
 * it relies on, the WEFT_API and WEFT_PRINTF markers, the version, the types every
 * area names (weft_fn, weft_loop, weft_task) and WEFT_FOREVER.
 *
 * Part of weft's public header: include <weft.h>, not this file.
 */
#ifndef WEFT_BASE_H
#define WEFT_BASE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define WEFT_API __attribute__((visibility("default")))
#define WEFT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define WEFT_API
#define WEFT_PRINTF(f, a)
#endif

/*
 * WEFT_WAIT marks the suspension points. Their result says whether the task was
 * cancelled or timed out, and a task that drops it runs on as if it had waited,
 * so the compiler warns when one is ignored. Check it, or keep it in a variable
 * you then look at. (GCC does not let a `(void)` cast silence this warning; define
 * WEFT_NO_WAIT_WARNINGS before including weft.h to turn it off, as weft's own
 * tests do where ignoring a result is the point.)
 */
#if defined(__GNUC__) && !defined(WEFT_NO_WAIT_WARNINGS)
#define WEFT_WAIT __attribute__((warn_unused_result))
#else
#define WEFT_WAIT
#endif

#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 1
#define WEFT_VERSION_PATCH 0
#define WEFT_VERSION_STRING "0.1.0"

/* A coroutine function: runs in a task, returns its result (or weft_fail(...)). */
typedef void *(*weft_fn)(void *arg);

typedef struct weft_loop weft_loop;
typedef struct weft_task weft_task;

/* A timeout of weft_timeout_enter or a wait that means "no deadline". */
#define WEFT_FOREVER 1e300

#endif /* WEFT_BASE_H */
