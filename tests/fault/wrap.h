/*
 * wrap.h — what a fault scenario may ask of wrap.c, the sweep's failing wrappers:
 * where counting starts, and (WEFT_FAULT_TLS) OpenSSL's allocations routed
 * through them.
 */
#ifndef WEFT_FAULT_WRAP_H
#define WEFT_FAULT_WRAP_H

/* Counting starts here in a build that defers it (WEFT_FAULT_TLS: after the
 * scenario's warm-up); elsewhere it runs from the first call, and this does nothing. */
void fault_arm(void);

#ifdef WEFT_FAULT_TLS
/* Routes OpenSSL's allocations through wrap.c (CRYPTO_set_mem_functions). Call it
 * first in main, before anything reaches OpenSSL: it refuses once OpenSSL has
 * allocated. Returns 0, or -1 when refused. */
int fault_tls_install(void);
#endif

#endif
