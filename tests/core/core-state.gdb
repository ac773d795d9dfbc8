# What the core tests compare: every thread's stack (functions and the "mark" locals), the
# callee-saved registers, stack pointer, TLS base and ymm8/ymm9, one line per thread by LWP.
set pagination off
set width 0
set confirm off
python
import gdb
def u64(expr):
    return int(gdb.parse_and_eval(expr)) & (2**64 - 1)
for t in sorted(gdb.selected_inferior().threads(), key=lambda t: t.ptid[1]):
    t.switch()
    regs = ' '.join('%s=%x' % (r, u64('$' + r)) for r in
                    ['rbx', 'rbp', 'rsp', 'r12', 'r13', 'r14', 'r15', 'fs_base'])
    ymm = ' '.join('%x' % u64('$%s.v4_int64[%d]' % (y, i)) for y in ['ymm8', 'ymm9'] for i in range(4))
    names, marks, fr = [], [], gdb.newest_frame()
    while fr is not None:
        names.append(fr.name() or '??')
        try:
            marks.append('%x' % int(fr.read_var('mark')))
        except (ValueError, gdb.error):
            pass
        fr = fr.older()
    print('REGS %d %s' % (t.ptid[1], regs))
    print('YMM %d %s' % (t.ptid[1], ymm))
    print('STACK %d %s' % (t.ptid[1], ' '.join(names)))
    print('MARKS %d %s' % (t.ptid[1], ' '.join(marks)))
end
printf "MAGIC %lx\n", g_magic
printf "PATTERN %s\n", g_pattern
printf "HEAP %lx %lx\n", g_heap[0], g_heap[131071]
printf "COUNTER %lu\n", g_counter
info threads
thread apply all bt
x/2gx g_heap
info registers rsp
