/*
 * weft/file.h — files off the loop: open, read, write, pread/pwrite, fsync, stat,
 * close and whole files, each run on the default thread pool while the calling task
 * waits, so the loop never blocks on a disk.
 *
 *   Python                                       weft
 *   f = await asyncio.to_thread(open, p, "rb")   fd = weft_file_open(p, O_RDONLY, 0)
 *   await asyncio.to_thread(f.read, n)           weft_file_read(fd, buf, n)
 *   await asyncio.to_thread(f.write, b)          weft_file_write(fd, b, n)  (all of it)
 *   os.pread(fd, n, off) / os.pwrite(fd, b, off) weft_file_pread / weft_file_pwrite
 *   os.fsync(fd), os.fdatasync(fd)               weft_file_fsync(fd), weft_file_fdatasync(fd)
 *   os.stat(p), os.fstat(fd)                     weft_file_stat(p, &st), weft_file_fstat(fd, &st)
 *   f.close()                                    weft_file_close(fd)
 *   Path(p).read_bytes()                         weft_file_read_all(p, &data, 0)
 *   Path(p).write_bytes(b)                       weft_file_write_all(p, b, n, NULL)
 *   await loop.sendfile(transport, f)            weft_stream_sendfile(s, fd, 0, size) (weft/net.h)
 *
 * The calls take and give plain descriptors: a descriptor from weft_file_open works
 * with every system call, and a descriptor you already have works with these calls.
 * Each call is one round trip to a pool thread (see weft_to_thread in weft/exec.h for
 * the pool); a whole-file call does its open, reads or writes and close in one.
 *
 * Cancellation never loses what a call did. A call's buffer is in use while its
 * system call runs, so a task cancelled (or whose timeout scope expires) during a
 * file call is handled by where the call is:
 *   - not started yet (waiting for its turn on the pool): it never runs, and returns
 *     -ECANCELED;
 *   - running in a thread: nothing can stop it, so the task waits for it and the call
 *     returns what it did (bytes read, bytes written, a descriptor opened). The
 *     cancellation is not lost: the task's next suspension point returns -ECANCELED.
 *     So a read's bytes and a write's effect are always reported to the caller, and
 *     the caller's buffer is never written to after the call returns.
 * Each call's "On cancel" says which applies; weft_file_read_all stops early instead
 * (it has no effect to lose), and weft_file_close always runs.
 *
 * Buffers may be anywhere, even on a compact task's stack: weft copies through a
 * buffer of its own when the memory would move while the task waits.
 *
 * Part of weft's public header: include <weft.h>, not this file.
 */
#ifndef WEFT_FILE_H
#define WEFT_FILE_H

#include "base.h"

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * weft_file_open — open(2) on a pool thread. O_CLOEXEC is always added (so a
 * subprocess does not inherit the descriptor); pass O_CREAT's mode as open does.
 * Returns: the new descriptor (>= 0), yours to close with weft_file_close.
 * Suspends: always, until the open has run (a task already cancelled returns at once).
 * Errors: open's, with the path in weft_errmsg() (-ENOENT, -EACCES, -EISDIR, -EEXIST,
 *   -EMFILE, ...); -EINVAL for a NULL path; -ECANCELED; -ENOMEM and -EAGAIN (no pool
 *   thread; the open did not run); WEFT_ENOTINLOOP.
 * On cancel: an open not yet started never runs (-ECANCELED; no file is created). One
 *   already running completes and its descriptor is returned: close it (the next
 *   suspension point returns -ECANCELED; weft_file_close still runs).
 */
WEFT_API WEFT_WAIT int weft_file_open(const char *path, int flags, mode_t mode);

/*
 * weft_file_read — one read(2) of up to n bytes into buf, on a pool thread (os.read).
 * Returns: the bytes read, 1..n; fewer than n near the end of a file or from a pipe
 *   or FIFO; 0 at end of file (or for n = 0).
 * Suspends: always, until the read has run (a task already cancelled returns at once).
 * Errors: read's (-EBADF, -EISDIR, -EIO, -EAGAIN on a non-blocking descriptor with
 *   nothing to read, ...), with the descriptor and its path in weft_errmsg(); -EBADF
 *   for a negative fd; -EINVAL for a NULL buf with n > 0 or n above SSIZE_MAX;
 *   -ECANCELED; -ENOMEM / -EAGAIN (no pool thread; nothing read); WEFT_ENOTINLOOP.
 * On cancel: a read not yet started never runs (-ECANCELED; the file position has
 *   not moved). One already running completes and returns its bytes, which are in buf
 *   (the next suspension point returns -ECANCELED).
 */
WEFT_API WEFT_WAIT ssize_t weft_file_read(int fd, void *buf, size_t n);

/*
 * weft_file_write — write all n bytes of buf, on a pool thread: write(2) again after
 * a short write until every byte is written or one fails (Python's f.write on a
 * buffered file, Go's File.Write).
 * Returns: n.
 * Suspends: always, until the writes have run (a task already cancelled returns at
 *   once).
 * Errors: write's (-ENOSPC, -EDQUOT, -EFBIG, -EIO, -EPIPE, -EBADF, ...), with the
 *   descriptor, its path and how many bytes were written before the failure in
 *   weft_errmsg() (those bytes stay written); -EBADF for a negative fd; -EINVAL for a
 *   NULL buf with n > 0 or n above SSIZE_MAX; -ECANCELED; -ENOMEM / -EAGAIN (no pool
 *   thread; nothing written); WEFT_ENOTINLOOP.
 * On cancel: a write not yet started never runs (-ECANCELED; nothing written). One
 *   already running writes all n bytes (or fails) and returns as above (the next
 *   suspension point returns -ECANCELED).
 */
WEFT_API WEFT_WAIT ssize_t weft_file_write(int fd, const void *buf, size_t n);

/*
 * weft_file_pread — one pread(2) of up to n bytes at offset: the descriptor's file
 * position neither used nor moved, so several tasks may read one descriptor at once
 * (os.pread). A pread of up to 128 KiB first takes what the page cache holds, on the
 * loop's thread (preadv2 with RWF_NOWAIT, which never waits for the disk: io_uring
 * does the same), and only what is not cached is read on a pool thread; a cached
 * read so costs a memory copy instead of a round trip to a thread.
 * Returns: the bytes read, 1..n; fewer near the end of the file; 0 at or past it.
 * Suspends: always, until the read has run (a task already cancelled returns at once);
 *   a read served from the page cache yields once, so that other tasks run.
 * Errors: as weft_file_read, plus -EINVAL for a negative offset and -ESPIPE for a pipe,
 *   FIFO or socket.
 * On cancel: as weft_file_read: not started, never runs; running, its bytes are
 *   returned in buf (also for a read served from the page cache and cancelled while
 *   it yields).
 */
WEFT_API WEFT_WAIT ssize_t weft_file_pread(int fd, void *buf, size_t n, off_t offset);

/*
 * weft_file_pwrite — write all n bytes of buf at offset with pwrite(2), again after a
 * short write, on a pool thread; the file position is not used or moved. (A descriptor
 * opened with O_APPEND appends instead, as pwrite does on Linux.)
 * Returns: n.
 * Suspends: always, until the writes have run (a task already cancelled returns at
 *   once).
 * Errors: as weft_file_write, plus -EINVAL for a negative offset and -ESPIPE for a
 *   pipe, FIFO or socket.
 * On cancel: as weft_file_write: not started, never runs; running, it writes all n
 *   bytes (or fails) and returns as above.
 */
WEFT_API WEFT_WAIT ssize_t weft_file_pwrite(int fd, const void *buf, size_t n, off_t offset);

/*
 * weft_file_fsync — fsync(2) on a pool thread: the file's data and metadata reach the
 * disk (os.fsync).
 * Returns: 0.
 * Suspends: always, until the fsync has run (a task already cancelled returns at once).
 * Errors: fsync's (-EIO: some write since the last fsync was lost; -ENOSPC, -EDQUOT;
 *   -EINVAL for a descriptor that cannot be synced, a pipe or socket), with the
 *   descriptor and its path in weft_errmsg(); -EBADF (also for a negative fd);
 *   -ECANCELED; -ENOMEM / -EAGAIN (no pool thread; not synced); WEFT_ENOTINLOOP.
 * On cancel: not started, it never runs (-ECANCELED: nothing is known to be on the
 *   disk). Running, it completes and its result is returned (the next suspension
 *   point returns -ECANCELED).
 */
WEFT_API WEFT_WAIT int weft_file_fsync(int fd);

/* weft_file_fdatasync — weft_file_fsync with fdatasync(2): the data, and only the
 * metadata needed to read it back (os.fdatasync).
 * Returns: 0.
 * Suspends: as weft_file_fsync.
 * Errors: as weft_file_fsync.
 * On cancel: as weft_file_fsync. */
WEFT_API WEFT_WAIT int weft_file_fdatasync(int fd);

/*
 * weft_file_stat — stat(2) of path (symbolic links followed), on a pool thread
 * (os.stat, Path.stat).
 * Returns: 0 with the file's status in *st.
 * Suspends: always, until the stat has run (a task already cancelled returns at once).
 * Errors: stat's (-ENOENT, -ENOTDIR, -EACCES, -ELOOP, ...), with the path in
 *   weft_errmsg(); -EINVAL for a NULL path or st; -ECANCELED; -ENOMEM / -EAGAIN;
 *   WEFT_ENOTINLOOP.
 * On cancel: not started, it never runs (-ECANCELED; *st untouched). Running, it
 *   completes and fills *st (the next suspension point returns -ECANCELED).
 */
WEFT_API WEFT_WAIT int weft_file_stat(const char *path, struct stat *st);

/* weft_file_fstat — fstat(2) of a descriptor, on a pool thread (os.fstat).
 * Returns: 0 with the status in *st.
 * Suspends: as weft_file_stat.
 * Errors: -EBADF (also for a negative fd), -EIO, with the descriptor in
 *   weft_errmsg(); -EINVAL for a NULL st; -ECANCELED; -ENOMEM / -EAGAIN;
 *   WEFT_ENOTINLOOP.
 * On cancel: as weft_file_stat. */
WEFT_API WEFT_WAIT int weft_file_fstat(int fd, struct stat *st);

/*
 * weft_file_close — close(2) on a pool thread (a close can wait: NFS writes back the
 * file's data then, and reports errors that writes could not). The descriptor is
 * closed whatever is returned: close is never tried again (on Linux a failed close
 * has released the descriptor already).
 * Returns: 0.
 * Suspends: until the close has run, even in a cancelled task. When no pool thread
 *   can take it (out of memory or threads), it closes on the loop's thread instead.
 * Errors: close's (-EIO, -ENOSPC, -EDQUOT: data written earlier was lost), with the
 *   descriptor in weft_errmsg(); -EBADF (also for a negative fd: nothing to close);
 *   WEFT_ENOTINLOOP outside a task (the descriptor is still closed, on the calling
 *   thread).
 * On cancel: the close runs anyway, even for a task cancelled before the call, and the
 *   task waits for it: it never returns -ECANCELED and never leaves a descriptor open.
 *   The cancellation stays for the next suspension point.
 */
WEFT_API WEFT_WAIT int weft_file_close(int fd);

/* weft_file_read_all's limit when it is given 0: 1 GiB. */
#define WEFT_FILE_READ_ALL_LIMIT ((size_t)1 << 30)

/*
 * weft_file_read_all — read a whole file, on a pool thread, in one round trip: open,
 * read until end of file, close (Path.read_bytes, Go's os.ReadFile). It reads until
 * read(2) says end of file rather than trusting the size stat gives, so files that
 * grow while read and files that report size 0 (/proc, /sys) come out whole.
 * *out receives a malloc'd buffer holding the bytes and one NUL after them (so a text
 * file is also a C string); free() it. `limit` is the most bytes accepted: 0 means
 * WEFT_FILE_READ_ALL_LIMIT (1 GiB), SIZE_MAX means none (a path such as /dev/zero then
 * reads until memory runs out).
 * Returns: the number of bytes (the NUL not counted), with *out set; *out is NULL on
 *   any error.
 * Suspends: always, until the file has been read (a task already cancelled returns at
 *   once).
 * Errors: open's and read's (-ENOENT, -EACCES, -EISDIR, -EIO, ...), with the path in
 *   weft_errmsg(); -EFBIG when the file has more than `limit` bytes (the message says
 *   the limit and how to raise it); -ENOMEM (also for a file too big for memory);
 *   -EINVAL for a NULL path or out; -ECANCELED; -EAGAIN (no pool thread);
 *   WEFT_ENOTINLOOP.
 * On cancel: not started, it never runs (-ECANCELED). Running, it stops before its
 *   next read (reads are at most 1 MiB: a read that waits, on a FIFO, still has to
 *   return first), closes the file and returns -ECANCELED with *out NULL: what it had
 *   read is dropped (reading a path has no effect to lose, except for a FIFO's bytes).
 */
WEFT_API WEFT_WAIT ssize_t weft_file_read_all(const char *path, char **out, size_t limit);

/* How weft_file_write_all writes; NULL or a zeroed struct gives the defaults. */
typedef struct weft_file_write_options {
    /* The permissions of a file it creates, before the umask; 0 = 0666 (as Python and
     * Go's usual 0666). An existing file keeps its own, unless replaced atomically. */
    mode_t mode;
    /* true: write a new file beside path (in the same directory, named
     * .<name>.weft-<random>), fsync it, rename it over path and fsync the
     * directory, so that path holds either its old contents or all the new ones,
     * even after a crash, and readers never see a half-written file. The new file
     * has `mode` (less the umask), not the replaced file's owner or permissions,
     * and a symbolic link at path is replaced, not followed. false (the default):
     * path is opened with O_TRUNC and written in place, as Python's write_bytes and
     * Go's os.WriteFile do: a reader or a crash in between can see it partly written. */
    bool atomic;
    /* true: fsync the file before closing it, so its data is on the disk when the
     * call returns (always so when atomic). The name of a file it created is only
     * as durable as its directory, which atomic also syncs. */
    bool sync;
} weft_file_write_options;

/*
 * weft_file_write_all — make path's contents the n bytes of data, on a pool thread, in
 * one round trip: create or truncate, write every byte, close (Path.write_bytes, Go's
 * os.WriteFile), or replace atomically (opts->atomic). data may be NULL when n is 0.
 * Returns: 0.
 * Suspends: always, until the file has been written (a task already cancelled returns
 *   at once).
 * Errors: open's, write's, fsync's, close's and, when atomic, rename's (-ENOENT for a
 *   missing directory, -EACCES, -EISDIR, -ENOSPC, -EDQUOT, -EIO, ...), with the path
 *   and how many bytes were written in weft_errmsg(). After a failure, an atomic
 *   write leaves path as it was (its new file removed); a plain one may leave it
 *   partly written. -EINVAL for a NULL path, a NULL data with n > 0 or n above
 *   SSIZE_MAX; -ECANCELED; -ENOMEM / -EAGAIN (no pool thread; nothing written);
 *   WEFT_ENOTINLOOP.
 * On cancel: not started, it never runs (-ECANCELED; path untouched). Running, it
 *   completes, atomic replace included, and returns 0 or its error as above (the next
 *   suspension point returns -ECANCELED): stopping half-way would leave a truncated
 *   file.
 */
WEFT_API WEFT_WAIT int weft_file_write_all(const char *path, const void *data, size_t n,
                                           const weft_file_write_options *opts);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_FILE_H */
