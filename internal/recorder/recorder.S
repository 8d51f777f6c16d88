# recorder.S: the recorder of the no-stop path (docs/DESIGN.md §8).
#
# A patched site jumps to its thunk, which skips the red zone, saves rax,
# loads the site's descriptor into rax and calls this code. It records the
# hit into the address space's ring without any system call in the common
# case: the registers, a TSC timestamp, the thread's ID (from a table
# keyed by fs_base), and the memory the probe's fetch-args read (through
# process_vm_readv on the process itself, which fails with EFAULT instead
# of faulting on a bad pointer). Then it returns to the thunk, which runs
# the displaced instructions and jumps back.
#
# Every register and the flags are as they were when it returns. The
# layout offsets (A_*, D_*, P_*, R_*, B_*, T_*, S_*) and constants are
# those of layout.go, given to the assembler with --defsym by gen.go
# (go generate), which writes code.go.

	.text
	.globl	recorder
recorder:
	pushfq
	push	%rbx
	push	%rcx
	push	%rdx
	push	%rsi
	push	%rdi
	push	%rbp
	push	%r8
	push	%r9
	push	%r10
	push	%r11
	push	%r12
	push	%r13
	push	%r14
	push	%r15
	cld
	mov	%rsp, %rbp		# the saved registers, see the R_REGS copy
	lea	-S_SCRATCH(%rsp), %rsp	# scratch: the S_* slots, below %rbp
	and	$-16, %rsp
	mov	%rax, %r15		# the site's descriptor
	mov	D_AREA(%r15), %r14	# its address space's area
	testq	$F_OFF, A_FLAGS(%r14)
	jnz	.Ldone

	# The thread's ID: its fs_base in the table, else gettid (and the
	# table learns it). The entry's busy word guards against a signal
	# handler that hits a site while this thread records: it must not
	# wait for room the outer record holds up.
	rdfsbase %rax
	test	%rax, %rax
	jz	16f			# no TLS: no entry (0 marks a free one)
	mov	%rax, %r8
	mov	%rax, %rcx
	shr	$12, %rcx
	xor	%rax, %rcx
	and	$(T_COUNT-1), %ecx
	mov	$T_COUNT, %edx
1:	mov	%rcx, %rdi
	shl	$T_SHIFT, %rdi
	lea	A_TIDS(%r14,%rdi), %rdi
	mov	(%rdi), %rsi
	cmp	%r8, %rsi
	je	3f
	test	%rsi, %rsi
	jz	2f
	inc	%ecx
	and	$(T_COUNT-1), %ecx
	dec	%edx
	jnz	1b
16:	xor	%edi, %edi		# no entry (table full, or no TLS), no guard
2:	mov	%rdi, S_ENTRY(%rbp)
	mov	$SYS_gettid, %eax
	syscall
	mov	%rax, %r9
	mov	S_ENTRY(%rbp), %rdi
	test	%rdi, %rdi
	jz	4f
	xor	%eax, %eax
	lock cmpxchg %r8, (%rdi)
	jne	5f			# another thread took the slot
	mov	%r9, T_TID(%rdi)
	jmp	4f
5:	movq	$0, S_ENTRY(%rbp)
	jmp	4f
3:	mov	%rdi, S_ENTRY(%rbp)
	mov	T_TID(%rdi), %r9
	test	%r9, %r9
	jz	2b			# being inserted: ask the kernel
4:	mov	%r9, S_TID(%rbp)

	# Reserve room. Nested in a signal handler (busy), or in drop mode:
	# only if there is room now, else the hit is counted as missed.
	mov	D_RECLEN(%r15), %ebx
	xor	%r12d, %r12d		# nested or drop mode: 1
	mov	S_ENTRY(%rbp), %rdi
	test	%rdi, %rdi
	jz	6f
	cmpq	$0, T_BUSY(%rdi)
	setne	%r12b
	incq	T_BUSY(%rdi)
6:	cmpl	$0, D_SYNC(%r15)	# a sync site's record is never dropped
	jne	7f
	testq	$F_DROP, A_FLAGS(%r14)
	jz	7f
	mov	$1, %r12d
7:
	# The head moves by the record's length only when the ring has
	# room for it (lock cmpxchg), so a thread that gives up holds no
	# room: the drain never waits for a record nobody will write.
.Lroom:
	mov	A_HEAD(%r14), %rax
8:	lea	(%rax,%rbx), %rcx
	mov	%rcx, %rdx
	sub	A_TAIL(%r14), %rdx	# from the tail to the record's end
	cmp	A_SIZE(%r14), %rdx
	ja	.Lfull
	lock cmpxchg %rcx, A_HEAD(%r14)	# rax: the head seen, else now
	jne	8b
	mov	%rax, %r13		# the record's position in the ring
	jmp	.Lwrite
	# Full: wait for ptprobe to drain the ring (lossless), unless the
	# hit may not wait (nested, drop mode), ptprobe stopped reading
	# (F_OFF), or its heartbeat is older than A_DEAD ticks (it is gone,
	# or stopped): then the hit is counted missed. Only ptprobe sets
	# F_OFF; a ptprobe that comes back finds the ring as it left it.
.Lfull:
	test	%r12d, %r12d
	jnz	.Lmissed
	testq	$F_OFF, A_FLAGS(%r14)
	jnz	.Lunbusy
	rdtsc
	shl	$32, %rdx
	or	%rdx, %rax
	sub	A_BEAT(%r14), %rax	# signed: a beat newer than the rdtsc is fresh
	cmp	A_DEAD(%r14), %rax
	jg	.Lmissed
	mov	$SYS_sched_yield, %eax
	syscall
	jmp	.Lroom
.Lmissed:
	lock incq D_MISSED(%r15)
	jmp	.Lunbusy

.Lwrite:
	mov	A_MASK(%r14), %r12
	and	%r13, %r12
	add	A_DATA(%r14), %r12	# the data is mapped twice: no wrap
	mov	D_SITE(%r15), %eax
	mov	%eax, R_SITE(%r12)
	mov	S_TID(%rbp), %rax
	mov	%eax, R_TID(%r12)
	rdtscp
	shl	$32, %rdx
	or	%rdx, %rax
	mov	%rax, R_TIME(%r12)
	and	$0xfff, %ecx
	mov	%ecx, R_CPU(%r12)
	mov	A_GEN(%r14), %rax
	mov	%eax, R_GEN(%r12)
	# Registers as they were at the site: rax from the thunk's push, rsp
	# above the thunk's return address, its rax and the red zone.
	mov	128(%rbp), %rax
	mov	%rax, R_REGS+0*8(%r12)
	mov	104(%rbp), %rax
	mov	%rax, R_REGS+1*8(%r12)
	mov	96(%rbp), %rax
	mov	%rax, R_REGS+2*8(%r12)
	mov	88(%rbp), %rax
	mov	%rax, R_REGS+3*8(%r12)
	mov	80(%rbp), %rax
	mov	%rax, R_REGS+4*8(%r12)
	mov	72(%rbp), %rax
	mov	%rax, R_REGS+5*8(%r12)
	mov	64(%rbp), %rax
	mov	%rax, R_REGS+6*8(%r12)
	lea	264(%rbp), %rax
	mov	%rax, R_REGS+7*8(%r12)
	mov	56(%rbp), %rax
	mov	%rax, R_REGS+8*8(%r12)
	mov	48(%rbp), %rax
	mov	%rax, R_REGS+9*8(%r12)
	mov	40(%rbp), %rax
	mov	%rax, R_REGS+10*8(%r12)
	mov	32(%rbp), %rax
	mov	%rax, R_REGS+11*8(%r12)
	mov	24(%rbp), %rax
	mov	%rax, R_REGS+12*8(%r12)
	mov	16(%rbp), %rax
	mov	%rax, R_REGS+13*8(%r12)
	mov	8(%rbp), %rax
	mov	%rax, R_REGS+14*8(%r12)
	mov	0(%rbp), %rax
	mov	%rax, R_REGS+15*8(%r12)
	mov	112(%rbp), %rax
	mov	%rax, R_REGS+16*8(%r12)

	# The memory the fetch-args read: each plan is a chain of 8-byte
	# reads from a base (a register of the record, or an address), then
	# a last read of an integer or a string. Every read becomes a block
	# of the record: address, length wanted, length read, bytes.
	lea	R_BLOCKS(%r12), %rax
	mov	%rax, S_OUT(%rbp)
	movl	$0, R_NBLOCKS(%r12)
	lea	D_PLANS(%r15), %rax
	mov	%rax, S_PLAN(%rbp)
	mov	D_NPLANS(%r15), %eax
	mov	%rax, S_LEFT(%rbp)
.Lplan:
	cmpq	$0, S_LEFT(%rbp)
	je	.Lcommit
	mov	S_PLAN(%rbp), %rsi
	movzbl	P_BASE(%rsi), %eax
	cmp	$16, %eax
	ja	10f
	mov	R_REGS(%r12,%rax,8), %rax
	jmp	11f
10:	mov	P_ABSADDR(%rsi), %rax
11:	mov	%rax, S_VAL(%rbp)
	movq	$0, S_LEVEL(%rbp)
.Llevel:
	mov	S_PLAN(%rbp), %rsi
	movzbl	P_NDEREF(%rsi), %ecx
	mov	S_LEVEL(%rbp), %rdx
	mov	P_OFFS(%rsi,%rdx,8), %rax
	add	S_VAL(%rbp), %rax
	mov	%rax, S_ADDR(%rbp)
	cmp	%rcx, %rdx
	je	.Llast
	mov	$8, %eax		# an intermediate word
	call	.Lread
	cmp	$8, %rax
	jne	.Lnext			# unreadable: the arg faults
	mov	S_OUT(%rbp), %rsi
	mov	-8(%rsi), %rax		# its value: S_OUT is just past it
	mov	%rax, S_VAL(%rbp)
	incq	S_LEVEL(%rbp)
	jmp	.Llevel
.Llast:
	mov	S_PLAN(%rbp), %rsi
	cmpb	$0, P_STRING(%rsi)
	jne	.Lstring
	mov	P_SIZE(%rsi), %eax
	call	.Lread
	jmp	.Lnext
.Lstring:
	# Up to MAX_STRING bytes, a page at a time, to the first NUL.
	mov	S_OUT(%rbp), %rdi
	mov	S_ADDR(%rbp), %rax
	mov	%rax, B_ADDR(%rdi)
	movl	$MAX_STRING, B_WANT(%rdi)
	movq	$0, S_GOT(%rbp)
12:	mov	S_ADDR(%rbp), %rax
	add	S_GOT(%rbp), %rax	# where the next chunk starts
	mov	%rax, %rcx
	and	$4095, %ecx
	mov	$4096, %edx
	sub	%rcx, %rdx		# to the page's end
	mov	$MAX_STRING, %ecx
	sub	S_GOT(%rbp), %rcx	# to the limit
	cmp	%rcx, %rdx
	cmova	%rcx, %rdx
	mov	%rdx, S_CHUNK(%rbp)
	mov	S_OUT(%rbp), %rdi
	lea	B_DATA(%rdi), %rdi
	add	S_GOT(%rbp), %rdi	# into the block, after what is read
	mov	%rdi, S_DEST(%rbp)
	call	.Lvmread
	test	%rax, %rax
	jle	14f
	mov	%rax, %rcx		# a NUL in what came?
	mov	S_DEST(%rbp), %rdi
	mov	%rax, %rdx
	xor	%eax, %eax
	repne scasb
	je	13f
	add	%rdx, S_GOT(%rbp)
	cmp	S_CHUNK(%rbp), %rdx
	jb	14f			# short: unreadable after it
	cmpq	$MAX_STRING, S_GOT(%rbp)
	jb	12b
	jmp	14f
13:	sub	%rcx, %rdx		# up to and with the NUL
	add	%rdx, S_GOT(%rbp)
14:	mov	S_OUT(%rbp), %rdi
	mov	S_GOT(%rbp), %rax
	mov	%eax, B_GOT(%rdi)
	add	$(B_DATA+7), %rax
	and	$-8, %rax
	add	%rax, S_OUT(%rbp)
	incl	R_NBLOCKS(%r12)
.Lnext:
	addq	$P_SIZEOF, S_PLAN(%rbp)
	decq	S_LEFT(%rbp)
	jmp	.Lplan

.Lcommit:
	mov	%ebx, R_LEN(%r12)	# last: the record is complete (x86 keeps store order)
	cmpq	$0, A_SLEEP(%r14)
	je	.Lsync
	lea	A_HEAD(%r14), %rdi	# ptprobe waits for the head to move
	mov	$FUTEX_WAKE, %esi
	mov	$1, %edx
	xor	%r10d, %r10d
	mov	$SYS_futex, %eax
	syscall

	# A sync site (the dynamic linker's _dl_debug_state) waits until
	# ptprobe has handled its record (armed the probes of the libraries
	# just mapped, before their code runs), unless ptprobe stopped
	# reading or its heartbeat is older than A_DEAD ticks.
.Lsync:
	cmpl	$0, D_SYNC(%r15)
	je	.Lunbusy
	lea	(%r13,%rbx), %rax
	mov	%rax, S_END(%rbp)
	lock incq A_KICK(%r14)	# the drain, polling, waits on it: now
	lea	A_KICK(%r14), %rdi
	mov	$FUTEX_WAKE, %esi
	mov	$1, %edx
	xor	%r10d, %r10d
	mov	$SYS_futex, %eax
	syscall
.Lsyncwait:
	mov	A_SYNCED(%r14), %rax
	cmp	S_END(%rbp), %rax
	jae	.Lunbusy
	mov	%rax, S_VAL(%rbp)	# the futex's value, for the wait
	testq	$F_OFF, A_FLAGS(%r14)
	jnz	.Lunbusy
	rdtsc
	shl	$32, %rdx
	or	%rdx, %rax
	sub	A_BEAT(%r14), %rax	# signed, as above
	cmp	A_DEAD(%r14), %rax
	jg	.Lunbusy		# ptprobe is gone, or stopped: go on
	movq	$0, S_TS(%rbp)
	movq	$W_SYNC, S_TS+8(%rbp)
	lea	A_SYNCED(%r14), %rdi	# its low 32 bits, as the kernel compares them
	mov	$FUTEX_WAIT, %esi
	mov	S_VAL(%rbp), %edx
	lea	S_TS(%rbp), %r10
	mov	$SYS_futex, %eax
	syscall
	jmp	.Lsyncwait
.Lunbusy:
	mov	S_ENTRY(%rbp), %rdi
	test	%rdi, %rdi
	jz	.Ldone
	decq	T_BUSY(%rdi)
.Ldone:
	mov	%rbp, %rsp
	pop	%r15
	pop	%r14
	pop	%r13
	pop	%r12
	pop	%r11
	pop	%r10
	pop	%r9
	pop	%r8
	pop	%rbp
	pop	%rdi
	pop	%rsi
	pop	%rdx
	pop	%rcx
	pop	%rbx
	popfq
	ret

# .Lread reads eax bytes (1..8) at S_ADDR into a new block at S_OUT, and
# returns in rax how many it read.
.Lread:
	mov	S_OUT(%rbp), %rdi
	mov	S_ADDR(%rbp), %rdx
	mov	%rdx, B_ADDR(%rdi)
	mov	%eax, B_WANT(%rdi)
	mov	%rax, S_CHUNK(%rbp)
	lea	B_DATA(%rdi), %rdi
	movq	$0, (%rdi)
	mov	%rdi, S_DEST(%rbp)
	movq	$0, S_GOT(%rbp)
	call	.Lvmread
	test	%rax, %rax
	jns	15f
	xor	%eax, %eax
15:	mov	S_OUT(%rbp), %rdi
	mov	%eax, B_GOT(%rdi)
	addq	$(B_DATA+8), S_OUT(%rbp)
	incl	R_NBLOCKS(%r12)
	ret

# .Lvmread reads S_CHUNK bytes at S_ADDR+S_GOT into S_DEST with
# process_vm_readv on the process itself: a bad address is EFAULT, or a
# short read up to the first unreadable page, never a fault. It returns
# the bytes read, or a negative errno.
.Lvmread:
	mov	S_DEST(%rbp), %rax
	mov	%rax, S_IOVL(%rbp)
	mov	S_CHUNK(%rbp), %rax
	mov	%rax, S_IOVL+8(%rbp)
	mov	%rax, S_IOVR+8(%rbp)
	mov	S_ADDR(%rbp), %rax
	add	S_GOT(%rbp), %rax
	mov	%rax, S_IOVR(%rbp)
	mov	A_PID(%r14), %rdi
	lea	S_IOVL(%rbp), %rsi
	mov	$1, %edx
	lea	S_IOVR(%rbp), %r10
	mov	$1, %r8d
	xor	%r9d, %r9d
	mov	$SYS_process_vm_readv, %eax
	syscall
	ret
