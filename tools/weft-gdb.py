# weft-gdb.py — gdb commands that show weft's tasks: a list of the tasks of the
# selected thread's loop with where each one is suspended, and the backtrace of any
# suspended task, as if it were running.
#
# Load it into gdb (11 or later). The program needs weft's debug information (-g, as
# in weft's default RelWithDebInfo build), from which the loop and the task records
# are read. An example session, on tests/gdb/gdb_target.c:
#
#     $ gdb build/tests/gdb/gdb_target
#     (gdb) source tools/weft-gdb.py
#     (gdb) break weft_gdb_breakpoint_here
#     (gdb) run
#     (gdb) weft tasks
#         Id  Name       State     Where
#     *    1  Task-1     running   weft_gdb_breakpoint_here () at gdb_target.c:26
#          2  Task-2     waiting   sleeper_deep_function (depth=2) at gdb_target.c:33
#          3  other      waiting   other (arg=0x0) at gdb_target.c:52
#          4  compact-a  waiting   compact_deep_function (seconds=3) at gdb_target.c:59
#          5  compact-b  waiting   compact_deep_function (seconds=4) at gdb_target.c:59
#     (gdb) weft bt 2            # or: weft bt Task-2, or an expression giving a weft_task *
#     Task 2 (Task-2), waiting:
#     #0  weft__wait (...) at src/core/task.c:234
#     #1  weft_sleep (...) at src/core/task.c:544
#     #2  0x... in sleeper_deep_function (depth=2) at tests/gdb/gdb_target.c:33
#     ...
#     #6  0x... in weft__ctx_trampoline () at src/ctx/ctx_x86_64.S:156
#     (gdb) weft bt other full   # what follows the task goes to `bt`
#     (gdb) weft bt              # the running task: gdb's own `bt`
#
# To have it in every session, put the `source` line in ~/.gdbinit.
#
# How `weft bt` works: weft__ctx_switch leaves a suspended task's registers on the
# task's own stack (src/ctx/ctx_*.S). The command points the selected thread's
# registers (sp, pc and the callee-saved ones) at that saved context, runs gdb's
# `bt`, and writes back every register it changed, even when something fails. The
# process does not run meanwhile. A compact task's frames may have been copied off
# the shared stack to the heap: they are put back in place for the `bt`, and the
# bytes they covered restored after it.
#
# In a core file registers cannot be written: there, an unwinder makes the task's
# frames appear as the callers of the thread's innermost frame, which `bt` leaves
# out. Frames of compact tasks that sit on the heap cannot be shown from a core.
#
# gcore: where the kernel has guard regions (Linux 6.13+), default stacks come from
# slabs with a guard page installed inside the mapping below each stack
# (src/core/stack.c). gdb's gcore reads the process through /proc/PID/mem, where a
# guard page reads as EIO, and gdb 13 then gives up on the whole mapping: every
# stack of the slab would be zeros in the core. So this file hooks gcore
# (generate-core-file): before it, weft__stack_guards_lift(1) is called in the
# process to remove the guard pages, and after it (or at the next prompt, if gcore
# failed) weft__stack_guards_lift(0) to install them again. The process does not
# run meanwhile. The gcore(1) script runs gdb without this file: its cores have
# zeros for those stacks. The kernel's own core dumps are not affected (it writes a
# guard page as a hole and the rest of the mapping as it is).
#
# x86-64 and AArch64, with the assembly context switch or the ucontext fallback.
# Where gdb cannot read thread-local variables (qemu's gdb stub), the loop is found
# by calling weft__debug_loop() in the process, or from $weft_loop if set.

import os
import struct

import gdb
import gdb.unwinder
from gdb.unwinder import Unwinder

# enum weft__task_state (src/core/core.h)
STATE_NAMES = {0: "free", 1: "new", 2: "ready", 3: "running", 4: "waiting", 5: "done"}
STATE_FREE, STATE_NEW, STATE_READY, STATE_RUNNING, STATE_WAITING, STATE_DONE = range(6)

# The callee-saved registers weft__ctx_switch keeps, and so the ones a backtrace of a
# suspended task is made from.
X86_64_REGS = ["rip", "rsp", "rbp", "rbx", "r12", "r13", "r14", "r15"]
AARCH64_REGS = ["pc", "sp"] + ["x%d" % n for n in range(19, 31)]

# ucontext_t's gregs[] indices on x86-64 Linux (<sys/ucontext.h>: REG_R12 ...).
X86_64_UC_GREGS = {"r12": 4, "r13": 5, "r14": 6, "r15": 7, "rbp": 10, "rbx": 11, "rsp": 15, "rip": 16}


class WeftError(gdb.GdbError):
    pass


class FramesOnHeap(WeftError):
    """A compact task's frames are on the heap and cannot be put back (core file)."""


def _u64(value):
    return int(value) & 0xFFFFFFFFFFFFFFFF


def _arch():
    name = gdb.newest_frame().architecture().name()
    if "x86-64" in name or "x86_64" in name:
        return "x86-64"
    if name.startswith("aarch64"):
        return "aarch64"
    raise WeftError("weft: the %s architecture is not supported (x86-64 and AArch64 are)" % name)


def _offset(type_name, member):
    return int(gdb.parse_and_eval("(unsigned long)&((%s *)0)->%s" % (type_name, member)))


class Task(object):
    """One task record, read from the loop's slabs."""

    def __init__(self, address, state, task_id, stack, fn, extra, wait_kind=0):
        self.address = address
        self.state = state
        self.id = task_id
        self.stack = stack
        self.fn = fn
        self.extra = extra
        self.wait_kind = wait_kind
        self.name = self._read_name()

    @property
    def waits_on(self):
        """What a waiting task waits on, as weft_dump names it ("sleep", "lock"), or ""."""
        if self.state != STATE_WAITING or not self.wait_kind:
            return ""
        try:
            kind = gdb.Value(self.wait_kind).cast(gdb.lookup_type("weft__wait_kind").pointer())
            return kind["what"].string()
        except gdb.error:
            return ""

    def _read_name(self):
        if self.extra:
            extra = gdb.Value(self.extra).cast(gdb.lookup_type("weft__task_extra").pointer())
            name = _u64(extra["name"])
            if name:
                try:
                    return extra["name"].string()
                except gdb.error:
                    return "<name at 0x%x unreadable>" % name
        return "Task-%d" % self.id

    @property
    def state_name(self):
        return STATE_NAMES.get(self.state, "state %d" % self.state)

    def _descriptor(self):
        return gdb.Value(self.stack).cast(gdb.lookup_type("weft__stack").pointer())

    def _descriptor_field(self, name, default=0):
        """A field of the stack descriptor, or `default` in versions without it."""
        d = self._descriptor()
        if name not in [f.name for f in d.dereference().type.strip_typedefs().fields()]:
            return default
        return int(d[name])

    @property
    def compact(self):
        return bool(self.stack) and self._descriptor_field("compact") != 0

    def stack_bounds(self):
        """[lo, hi) of the stack the task runs on."""
        d = self._descriptor()
        lo = _u64(d["lo"])
        return lo, lo + int(d["size"])

    def frames_elsewhere(self, loop):
        """For a compact task whose frames were copied off the loop's shared stack
        to make room for another's: (address they belong at, their bytes). Else None."""
        if not self.compact or _u64(loop["shared_owner"]) == self.address:
            return None
        d = self._descriptor()
        length = self._descriptor_field("saved_len")
        if not length:
            return None
        if "sp" not in [f.name for f in d["ctx"].type.strip_typedefs().fields()]:
            raise WeftError("weft: weft-gdb.py knows where a compact task's frames belong only "
                            "with the assembly context switch")
        # compact.c keeps the frames right after the descriptor.
        copy = self.stack + gdb.lookup_type("weft__stack").sizeof
        return _u64(d["ctx"]["sp"]), bytes(gdb.selected_inferior().read_memory(copy, length))

    def saved_registers(self, arch):
        """The registers the task will resume with, as {name: value}. For a compact
        task, its frames must be in place on the shared stack first."""
        ctx = self._descriptor()["ctx"]
        field_names = [f.name for f in ctx.type.strip_typedefs().fields()]
        if "uc" in field_names:
            mc = ctx["uc"]["uc_mcontext"]
            if arch == "x86-64":
                return dict((r, _u64(mc["gregs"][i])) for r, i in X86_64_UC_GREGS.items())
            regs = dict(("x%d" % n, _u64(mc["regs"][n])) for n in range(19, 31))
            regs["sp"] = _u64(mc["sp"])
            regs["pc"] = _u64(mc["pc"])
            # glibc's AArch64 swapcontext saves a pc inside itself, whose code
            # returns through x1, where it keeps its caller's return address.
            if "swapcontext" in (_function_at(regs["pc"]) or ""):
                regs["pc"] = regs["x30"] = _u64(mc["regs"][1])
            return regs
        sp = _u64(ctx["sp"])
        inferior = gdb.selected_inferior()
        if arch == "x86-64":
            # weft__ctx_switch's frame: MXCSR+x87 CW, r15 r14 r13 r12 rbx rbp, return address.
            words = struct.unpack("<8Q", bytes(inferior.read_memory(sp, 64)))
            return {"r15": words[1], "r14": words[2], "r13": words[3], "r12": words[4],
                    "rbx": words[5], "rbp": words[6], "rip": words[7], "rsp": sp + 64}
        # x19..x28, x29, x30 at 0..88; the whole frame is 176 bytes.
        words = struct.unpack("<12Q", bytes(inferior.read_memory(sp, 96)))
        regs = dict(("x%d" % (19 + i), words[i]) for i in range(12))
        regs["sp"] = sp + 176
        regs["pc"] = regs["x30"]
        return regs


def _loop():
    """The selected thread's loop (a weft_loop * value). Found, in this order, in
    $weft_loop if the user set it, in the thread-local weft__loop, or by calling
    weft__debug_loop() in the process: gdb cannot read thread-local variables
    everywhere (a remote stub such as qemu's has no TLS support). (Not
    weft_loop_current(): it gives the loop's public handle, not the loop.)"""
    override = gdb.convenience_variable("weft_loop")
    if override is not None:
        loop = override.cast(gdb.lookup_type("weft_loop").pointer())
    else:
        try:
            loop = gdb.parse_and_eval("weft__loop")
        except gdb.error as tls_error:
            try:
                loop = gdb.parse_and_eval("weft__debug_loop()")
            except gdb.error as call_error:
                raise WeftError("weft: cannot find this thread's loop: reading weft__loop says %s; "
                                "calling weft__debug_loop() says %s. Is the program built with weft's "
                                "debug information (-g)? Or set it: set $weft_loop = (weft_loop *) ADDRESS"
                                % (tls_error, call_error))
            loop = loop.cast(gdb.lookup_type("weft_loop").pointer())
    if _u64(loop) == 0:
        raise WeftError("weft: no weft loop is running on this thread (weft_run has not started "
                        "one, or has returned). In a program with several threads, select the one "
                        "in weft_run with `thread N` (see `info threads`).")
    return loop


def _tasks(loop):
    """Every task record in use (not on the free list), in id order."""
    task_type = gdb.lookup_type("weft_task")
    size = task_type.sizeof
    off_state = _offset("weft_task", "node.b1")
    off_stack = _offset("weft_task", "stack")
    off_fn = _offset("weft_task", "fn")
    off_extra = _offset("weft_task", "extra")
    off_wait_kind = _offset("weft_task", "wait_kind")
    off_id = _offset("weft_task", "id")
    off_records = _offset("weft__task_slab", "tasks")
    inferior = gdb.selected_inferior()
    tasks = []
    slab = loop["task_slabs"]
    while _u64(slab):
        count = int(slab["count"])
        base = _u64(slab) + off_records
        # One read per slab: a loop can hold a million records.
        raw = bytes(inferior.read_memory(base, count * size))
        for i in range(count):
            rec = i * size
            state = raw[rec + off_state]
            if state == STATE_FREE:
                continue
            tasks.append(Task(base + rec, state,
                              struct.unpack_from("<I", raw, rec + off_id)[0],
                              struct.unpack_from("<Q", raw, rec + off_stack)[0],
                              struct.unpack_from("<Q", raw, rec + off_fn)[0],
                              struct.unpack_from("<Q", raw, rec + off_extra)[0],
                              struct.unpack_from("<Q", raw, rec + off_wait_kind)[0]))
        slab = slab["next"]
    tasks.sort(key=lambda t: t.id)
    return tasks


def _find_task(loop, spec):
    tasks = _tasks(loop)
    if spec.isdigit():
        for t in tasks:
            if t.id == int(spec):
                return t
    for t in tasks:
        if t.name == spec:
            return t
    try:
        # A user's handle carries tags (the task's id in the top 16 bits, its
        # loop's serial in the low 3): the record is the address without them.
        address = _u64(gdb.parse_and_eval(spec)) & ((1 << 48) - 1) & ~7
    except gdb.error:
        address = None
    for t in tasks:
        if t.address == address:
            return t
    raise WeftError("weft: no task %r in this thread's loop (give an id, a name or a weft_task * "
                    "expression; `weft tasks` lists them)" % spec)


_weft_source_dir = []


def _weft_dir():
    """The directory of weft's sources (src/), from the debug information, or None."""
    if not _weft_source_dir:
        directory = None
        try:
            symbol = gdb.lookup_global_symbol("weft_run")
            if symbol is not None and symbol.symtab is not None:
                directory = os.path.dirname(symbol.symtab.fullname()) + os.sep
        except gdb.error:
            pass
        _weft_source_dir.append(directory)
    return _weft_source_dir[0]


def _is_weft_internal(frame):
    function = frame.function()
    directory = _weft_dir()
    if function is not None and function.symtab is not None and directory:
        return function.symtab.fullname().startswith(directory)
    name = frame.name() or ""
    return name.startswith("weft_")


def _describe_frame(frame):
    name = frame.name() or "0x%x" % frame.pc()
    args = []
    try:
        block = frame.block()
        for symbol in block:
            if symbol.is_argument:
                try:
                    args.append("%s=%s" % (symbol.print_name, symbol.value(frame).format_string(summary=True)))
                except (gdb.error, TypeError):
                    args.append("%s=?" % symbol.print_name)
    except RuntimeError:
        pass
    text = "%s (%s)" % (name, ", ".join(args))
    sal = frame.find_sal()
    if sal.symtab is not None:
        text += " at %s:%d" % (os.path.basename(sal.symtab.filename), sal.line)
    return text


def _where(frame=None, max_frames=64):
    """The first frame outside weft's own code, from `frame` (the newest) outwards."""
    frame = frame or gdb.newest_frame()
    innermost = frame
    for _ in range(max_frames):
        if frame is None:
            break
        if not _is_weft_internal(frame):
            return _describe_frame(frame)
        frame = frame.older()
    return _describe_frame(innermost)


def _registers_writable():
    """False for a core file, where gdb cannot change the registers."""
    inferior = gdb.selected_inferior()
    connection = getattr(inferior, "connection", None)  # gdb 13 and later
    if connection is not None:
        return connection.type != "core"
    return "core dump" not in gdb.execute("info target", to_string=True)


class _FrameId(object):
    def __init__(self, sp, pc):
        # gdb before 14 accepts only gdb.Value attributes here.
        word = gdb.lookup_type("unsigned long")
        self.sp = gdb.Value(sp).cast(word)
        self.pc = gdb.Value(pc).cast(word)


class _TaskContextUnwinder(Unwinder):
    """The way to a suspended task's frames where registers cannot be written (a
    core file): it makes the selected thread's innermost frame look like the caller
    of the task's saved context, so the task's frames follow it."""

    def __init__(self):
        super(_TaskContextUnwinder, self).__init__("weft-task-context")
        self.registers = None  # the task's saved registers while borrowing

    def __call__(self, pending_frame):
        if self.registers is None or pending_frame.level() != 0:
            return None
        # gdb stops a backtrace whose caller lies below its callee ("previous frame
        # inner to this frame"), and task stacks can lie anywhere: give this frame an
        # identity just below the task's stack pointer.
        sp = self.registers["rsp" if "rsp" in self.registers else "sp"]
        info = pending_frame.create_unwind_info(_FrameId(sp - 16, int(pending_frame.read_register("pc"))))
        word = gdb.lookup_type("unsigned long")
        for name, value in self.registers.items():
            info.add_saved_register(name, gdb.Value(value).cast(word))
        return info


class _HideInnermostFrame(object):
    """Keeps the selected thread's own frame #0 out of `bt` while the unwinder above
    stands it in front of a task's frames."""

    def __init__(self):
        self.name = "weft-hide-innermost"
        self.priority = 100
        self.enabled = False

    def filter(self, frames):
        return (f for f in frames if f.inferior_frame().level() != 0)


_unwinder = _TaskContextUnwinder()
gdb.unwinder.register_unwinder(None, _unwinder, replace=True)
_frame_filter = _HideInnermostFrame()
gdb.frame_filters[_frame_filter.name] = _frame_filter


class Borrowed(object):
    """Points the selected thread at a suspended task's saved context, and back (a
    context manager). Borrows the registers, and for a compact task whose frames
    are on the heap, the part of the shared stack they belong in.

    Where registers cannot be written (a core file), an unwinder shows the task's
    frames as the callers of the thread's innermost frame instead, which `bt` then
    leaves out; a compact task's frames copied to the heap cannot be shown then."""

    def __init__(self, arch, loop):
        self.arch = arch
        self.loop = loop
        self.names = X86_64_REGS if arch == "x86-64" else AARCH64_REGS
        self.saved = None
        self.orig_rax = None
        self.memory = None  # (address, original bytes) while frames are swapped in
        self.selected_level = 0
        self.by_unwinder = False

    def __enter__(self):
        self.selected_level = gdb.selected_frame().level()
        frame = gdb.newest_frame()
        self.saved = [(name, _u64(frame.read_register(name))) for name in self.names]
        if self.arch == "x86-64":
            # Some of gdb's pc writes also set $orig_rax to -1 (so that a system
            # call the thread was stopped in is not restarted): put it back too.
            try:
                self.orig_rax = int(frame.read_register("orig_rax"))
            except (ValueError, gdb.error):
                pass
        self.by_unwinder = not _registers_writable()
        return self

    @staticmethod
    def _write(registers):
        failures = []
        for name, value in registers:
            # `set $reg` writes the selected frame's register: it must be frame 0's,
            # or a caller's saved copy on the stack would be overwritten.
            try:
                gdb.newest_frame().select()
                gdb.execute("set $%s = %d" % (name, value), to_string=True)
            except gdb.error as e:
                failures.append("%s: %s" % (name, e))
        return failures

    def _put_memory_back(self):
        if self.memory is not None:
            address, original = self.memory
            self.memory = None
            gdb.selected_inferior().write_memory(address, original)

    def switch_to(self, task):
        self._put_memory_back()
        elsewhere = task.frames_elsewhere(self.loop)
        if elsewhere is not None:
            if self.by_unwinder:
                raise FramesOnHeap("weft: task %d (%s) is compact and its frames were copied off the "
                                "shared stack: only in a live process can they be put back for a "
                                "backtrace" % (task.id, task.name))
            address, frames = elsewhere
            inferior = gdb.selected_inferior()
            original = bytes(inferior.read_memory(address, len(frames)))
            try:
                inferior.write_memory(address, frames)
            except gdb.error:
                inferior.write_memory(address, original)
                raise
            self.memory = (address, original)
        registers = task.saved_registers(self.arch)
        if self.by_unwinder:
            _unwinder.registers = registers
            _frame_filter.enabled = True
            gdb.invalidate_cached_frames()
            return
        order = [n for n in self.names if n in registers]
        failures = self._write([(n, registers[n]) for n in order])
        if failures:
            raise WeftError("weft: could not set the registers (%s)" % "; ".join(failures))

    def first_frame(self):
        """The innermost frame of the borrowed context."""
        frame = gdb.newest_frame()
        return frame.older() if self.by_unwinder else frame

    def __exit__(self, *exc):
        failures = []
        if self.by_unwinder:
            _unwinder.registers = None
            _frame_filter.enabled = False
            gdb.invalidate_cached_frames()
        else:
            try:
                self._put_memory_back()
            except gdb.error as e:
                failures.append("the shared stack's bytes: %s" % e)
            failures += self._write(self.saved)
            if self.orig_rax is not None:
                failures += self._write([("orig_rax", self.orig_rax)])
        if failures:
            gdb.write("weft: WARNING: could not restore %s\n" % "; ".join(failures), gdb.STDERR)
        else:
            # Back to the frame the user had selected.
            frame = gdb.newest_frame()
            while frame is not None and frame.level() < self.selected_level:
                frame = frame.older()
            (frame or gdb.newest_frame()).select()
        return False


def _running_here(task, loop):
    """True if the selected thread is executing on the task's stack right now (its
    state can lag behind while it is inside weft's switch code)."""
    if not task.stack:
        return False
    if task.compact and _u64(loop["shared_owner"]) != task.address:
        return False  # the shared stack holds another compact task's frames
    lo, hi = task.stack_bounds()
    sp = _u64(gdb.newest_frame().read_register("sp"))
    return lo <= sp < hi


def _function_at(address):
    block = gdb.block_for_pc(address)
    while block is not None and block.function is None:
        block = block.superblock
    if block is not None:
        return block.function.print_name
    text = gdb.execute("info symbol 0x%x" % address, to_string=True).strip()
    return text.split(" in section")[0] if text and not text.startswith("No symbol") else "0x%x" % address


def _suspended(task):
    return task.stack and task.state in (STATE_READY, STATE_WAITING)


class WeftPrefix(gdb.Command):
    """Commands for weft programs: `weft tasks`, `weft bt [TASK]`."""

    def __init__(self):
        super(WeftPrefix, self).__init__("weft", gdb.COMMAND_STACK, gdb.COMPLETE_NONE, True)


class WeftTasks(gdb.Command):
    """List the tasks of the selected thread's weft loop.

Usage: weft tasks [-q]
For each task: its id, name, state (new, ready, running, waiting, done) and where it
is: the first frame outside weft's own code (where a suspended task will resume,
what a running task is doing), or the function a new task will start in; and for a
waiting task, what it waits on (sleep, lock, queue, ...: weft_dump says more).
The running task is marked with `*`. -q leaves out the Where column (it unwinds
every suspended task's stack, which takes a while for many thousands of tasks)."""

    def __init__(self):
        super(WeftTasks, self).__init__("weft tasks", gdb.COMMAND_STACK)

    def invoke(self, argument, from_tty):
        quick = argument.strip() == "-q"
        if argument.strip() and not quick:
            raise WeftError("usage: weft tasks [-q]")
        loop = _loop()
        tasks = _tasks(loop)
        current = _u64(loop["current"])
        arch = _arch()
        where = {}
        if not quick:
            for t in tasks:
                if t.address == current or _running_here(t, loop):
                    where[t.address] = _where()
                elif t.state == STATE_NEW:
                    where[t.address] = "not started; will run %s" % _function_at(t.fn)
            suspended = [t for t in tasks if _suspended(t) and t.address not in where]
            if suspended:
                with Borrowed(arch, loop) as borrowed:
                    for t in suspended:
                        try:
                            borrowed.switch_to(t)
                            where[t.address] = _where(borrowed.first_frame())
                        except FramesOnHeap:
                            where[t.address] = "<compact, frames copied off the shared stack: needs a live process>"
                        except gdb.error as e:
                            where[t.address] = "<cannot unwind: %s>" % e
        width = max([len(t.name) for t in tasks] + [4])
        lines = ["  %4s  %-*s  %-8s  %s" % ("Id", width, "Name", "State", "Where" if not quick else "")]
        for t in tasks:
            mark = "*" if t.address == current else " "
            waits = t.waits_on
            lines.append("%s %4d  %-*s  %-8s  %s%s" % (mark, t.id, width, t.name, t.state_name,
                                                       where.get(t.address, ""),
                                                       "  [waits on: %s]" % waits if waits else ""))
        gdb.write("".join(line.rstrip() + "\n" for line in lines))
        if not tasks:
            gdb.write("(no tasks)\n")


class WeftBacktrace(gdb.Command):
    """Backtrace of a weft task.

Usage: weft bt [TASK [BT-ARGUMENTS...]]
TASK is a task id, a task name, or an expression giving a weft_task *.
For a suspended task (ready or waiting), the selected thread's registers are pointed
at the context the task saved when it suspended, gdb's `bt` runs with BT-ARGUMENTS
(e.g. `full`, `-frame-arguments all`), and every register is put back.
Without TASK, or for the running task: gdb's `bt`."""

    def __init__(self):
        super(WeftBacktrace, self).__init__("weft bt", gdb.COMMAND_STACK)

    def invoke(self, argument, from_tty):
        words = gdb.string_to_argv(argument)
        if not words:
            self._running(None, "")
            return
        spec, rest = words[0], " ".join(words[1:])
        loop = _loop()
        task = _find_task(loop, spec)
        label = "Task %d (%s)" % (task.id, task.name)
        if task.address == _u64(loop["current"]) or _running_here(task, loop):
            self._running(task, rest)
            return
        if task.state == STATE_NEW:
            gdb.write("%s has not started yet: it will run %s.\n" % (label, _function_at(task.fn)))
            return
        if not _suspended(task):
            gdb.write("%s is %s: it has no stack.\n" % (label, task.state_name))
            return
        gdb.write("%s, %s%s:\n" % (label, task.state_name, ", compact" if task.compact else ""))
        with Borrowed(_arch(), loop) as borrowed:
            borrowed.switch_to(task)
            if borrowed.by_unwinder:
                gdb.write("(a core file: its registers cannot be changed, so the thread's own frame #0 "
                          "is left out and the task's frames start at #1)\n")
            gdb.execute("backtrace " + rest)

    @staticmethod
    def _running(task, rest):
        if task is None:
            try:
                loop = _loop()
                loop_address = _u64(loop)
            except (gdb.error, gdb.GdbError):
                loop_address = 0  # not a weft program, or another thread
            if loop_address and _u64(loop["current"]):
                current = _u64(loop["current"])
                task = [t for t in _tasks(loop) if t.address == current][0]
            elif loop_address:
                gdb.write("No task is running: this is the loop's scheduler, on the thread's own stack.\n")
        if task is not None:
            gdb.write("Task %d (%s), running:\n" % (task.id, task.name))
        gdb.execute("backtrace " + rest)


class WeftGcoreGuards(gdb.Command):
    """Lift (`lift`) or put back (`restore`) the guard pages of weft's stack slabs
    around gdb's gcore, which cannot read through them. Run by the hooks this file
    defines on generate-core-file (gcore); there is no need to type it."""

    lifted = False

    def __init__(self):
        super(WeftGcoreGuards, self).__init__("weft gcore-guards", gdb.COMMAND_DATA)

    def invoke(self, argument, from_tty):
        lift = argument.strip() == "lift"
        if gdb.selected_inferior().pid == 0 or gdb.selected_thread() is None:
            WeftGcoreGuards.lifted = False  # a core file, or the process is gone
            return
        if lift == WeftGcoreGuards.lifted:
            return
        try:
            gdb.parse_and_eval("weft__stack_guards_lift")
        except gdb.error:
            return  # not a weft program, or a weft without guard slabs
        try:
            result = int(gdb.parse_and_eval("(int) weft__stack_guards_lift(%d)" % int(lift)))
        except gdb.error as e:
            result, why = None, str(e)
        else:
            why = os.strerror(-result) if result < 0 else ""
        if result is None or result < 0:
            gdb.write("weft: could not %s the guard pages of the task stacks (%s): %s\n"
                      % ("remove" if lift else "reinstall", why,
                         "gcore may write those stacks as zeros" if lift else
                         "run `weft gcore-guards restore` before the program goes on"))
            return
        WeftGcoreGuards.lifted = lift

    @staticmethod
    def restore_if_lifted(*_):
        """When gcore failed, its hookpost did not run: put the guards back before
        the user can let the program run again."""
        if WeftGcoreGuards.lifted:
            gdb.execute("weft gcore-guards restore")


def _define_gcore_hooks():
    for hook, action in (("hook-generate-core-file", "lift"), ("hookpost-generate-core-file", "restore")):
        try:
            existing = gdb.execute("show user " + hook, to_string=True)
        except gdb.error:
            existing = ""
        if "weft gcore-guards" in existing:
            continue  # this file was sourced before: redefining would ask for confirmation
        if existing.strip():
            gdb.write("weft: %s is already defined: not replacing it, so gcore may write the task "
                      "stacks of guarded slabs as zeros (add `weft gcore-guards %s` to it)\n" % (hook, action))
            continue
        gdb.execute("define %s\nweft gcore-guards %s\nend" % (hook, action))


WeftPrefix()
WeftTasks()
WeftBacktrace()
WeftGcoreGuards()
_define_gcore_hooks()
gdb.events.before_prompt.connect(WeftGcoreGuards.restore_if_lifted)
