/*
 * signals.h — what run.c needs of the signal module (proc/signal.c): the module
 * itself (its term gives back every signal the loop owns) and weft_run's Ctrl-C
 * handling. Never installed.
 */
#ifndef WEFT__SRC_PROC_SIGNALS_H
#define WEFT__SRC_PROC_SIGNALS_H

#include "core/core.h"

/* The signals a loop owns (slots[WEFT__SLOT_SIGNALS]); term restores each one's
 * previous disposition, SIGINT's too when weft_run took it for Ctrl-C. */
extern const weft__module weft__module_signals;

/*
 * weft_run's SIGINT handling (asyncio.run's), in three calls on the loop's thread:
 *   weft__sigint_watch   after the loop is current, before main exists: takes SIGINT
 *                        when this is the main thread, SIGINT's disposition is
 *                        SIG_DFL and opts->no_sigint is 0. Returns 0 (also when it
 *                        leaves SIGINT alone) or -ENOMEM / sigaction's error, with
 *                        the message set; nothing is left installed then.
 *   weft__sigint_main    names the main task a first Ctrl-C cancels.
 *   weft__sigint_main_done  once main has finished, before its record is freed:
 *                        from then on any SIGINT kills the process at once. Returns
 *                        whether a Ctrl-C cancelled main.
 * The module's term puts SIGINT's disposition back.
 */
int weft__sigint_watch(weft_loop *L, const weft_options *opts);
void weft__sigint_main(weft_loop *L, weft_task *main_task);
bool weft__sigint_main_done(weft_loop *L);

#endif /* WEFT__SRC_PROC_SIGNALS_H */
