#include "textflag.h"

// func rdtscp() (tsc uint64, aux uint32)
TEXT ·rdtscp(SB), NOSPLIT, $0-12
	RDTSCP
	SHLQ	$32, DX
	ORQ	DX, AX
	MOVQ	AX, tsc+0(FP)
	MOVL	CX, aux+8(FP)
	RET
