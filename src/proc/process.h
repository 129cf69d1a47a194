/*
 * process.h — what the rest of weft needs of subprocesses (process.c): the loop
 * module that keeps each loop's children (slots[WEFT__SLOT_PROC]) and, when the
 * loop ends, kills and reaps those still running and reports handles never freed.
 * Never installed.
 */
#ifndef WEFT__SRC_PROC_PROCESS_H
#define WEFT__SRC_PROC_PROCESS_H

#include "core/core.h"

/* process.c: the loop's children. After the network module in run.c's list: its
 * term, which runs first, closes the pipes' streams while the network's records
 * still exist. */
extern const weft__module weft__module_proc;

#endif
