/*
 * assert.c — what a failed WEFT__ASSERT does (util.h): name the broken invariant
 * and where, in one write to stderr, and abort. Compiled in every build, used only
 * by those with WEFT_ASSERTS.
 */
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

void weft__assert_failed(const char *cond, const char *file, int line, const char *func);

void weft__assert_failed(const char *cond, const char *file, int line, const char *func)
{
    char text[512];
    int n = snprintf(text, sizeof text, "weft: internal error: %s:%d: %s: assertion '%s' failed (a bug in weft: "
                                        "please report it)\n", file, line, func, cond);
    if (n > 0) {
        ssize_t w = write(STDERR_FILENO, text, (size_t)n < sizeof text ? (size_t)n : sizeof text - 1);
        (void)w;
    }
    abort();
}
