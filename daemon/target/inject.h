/* SPDX-License-Identifier: MIT */
/*
 * Running syscalls inside a held target, and reading/writing its memory.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "target/attach.h"

/*
 * Run syscall nr with args in the target, on one held thread (one that is not inside a syscall
 * if there is one). Every register is restored afterwards and no target memory is written
 * (the `syscall` executed is one in the target's [vdso]; without a vdso, one is poked at the
 * thread's rip and the original bytes put back). Returns 0 when the syscall ran, with its raw
 * result (-errno included) in *ret_result; -errno when it could not be run.
 */
int target_inject_syscall(struct target *t, long nr, const long args[6], long *ret_result);

/* process_vm_readv()/writev() of exactly len bytes; a short transfer is -EFAULT. */
int target_mem_read(const struct target *t, uint64_t addr, void *buf, size_t len);
int target_mem_write(const struct target *t, uint64_t addr, const void *buf, size_t len);
