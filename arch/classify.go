package arch

// refusedOneByte and refusedTwoByte name the opcodes that cannot be
// probed, and why. Everything they list transfers control in a way a slot
// cannot reproduce or that a tracer must not touch.
var (
	refusedOneByte = map[byte]string{
		0xCC: "int3 cannot be probed (it is already a breakpoint: the program's own or another debugger's)",
		0xCD: "int n cannot be probed (software interrupt)",
		0xF1: "int1 cannot be probed (software debug trap)",
		0xCF: "iret cannot be probed (interrupt return)",
		0xCA: "far ret cannot be probed",
		0xCB: "far ret cannot be probed",
		0xF4: "hlt cannot be probed (privileged)",
		0xE4: "in cannot be probed (port I/O)",
		0xE5: "in cannot be probed (port I/O)",
		0xEC: "in cannot be probed (port I/O)",
		0xED: "in cannot be probed (port I/O)",
		0xE6: "out cannot be probed (port I/O)",
		0xE7: "out cannot be probed (port I/O)",
		0xEE: "out cannot be probed (port I/O)",
		0xEF: "out cannot be probed (port I/O)",
		0x6C: "ins cannot be probed (port I/O)",
		0x6D: "ins cannot be probed (port I/O)",
		0x6E: "outs cannot be probed (port I/O)",
		0x6F: "outs cannot be probed (port I/O)",
	}
	refusedTwoByte = map[byte]string{
		0x07: "sysret cannot be probed (privileged)",
		0x34: "sysenter cannot be probed (its return address is set up by the caller)",
		0x35: "sysexit cannot be probed (privileged)",
	}
)

// classify sets inst.Flow, Class and Reason. It works from the opcode
// bytes (lay), not from x86asm's Op, so that a decoder error on an exotic
// encoding cannot turn a control transfer into an ordinary instruction.
func classify(inst *Inst, lay *layout) {
	inst.Flow, inst.Class, inst.Reason = FlowNone, ClassRelocate, ""
	refuse := func(why string) {
		inst.Flow, inst.Class, inst.Reason = FlowOther, ClassRefuse, why
	}
	if lay.vex == 0 {
		switch op := lay.op; lay.opmap {
		case mapOne:
			switch {
			case op >= 0x70 && op <= 0x7F:
				inst.Flow = FlowJcc
			case op >= 0xE0 && op <= 0xE3:
				inst.Flow = FlowLoop
			case op == 0xEB || op == 0xE9:
				inst.Flow = FlowJmp
			case op == 0xE8:
				inst.Flow = FlowCall
			case op == 0xC2 || op == 0xC3:
				inst.Flow = FlowRet
			case op == 0xFF && lay.reg() == 2:
				inst.Flow = FlowCallIndirect
			case op == 0xFF && lay.reg() == 3:
				refuse("far call cannot be probed")
				return
			case op == 0xFF && lay.reg() == 4:
				inst.Flow = FlowJmpIndirect
			case op == 0xFF && lay.reg() == 5:
				refuse("far jmp cannot be probed")
				return
			case op == 0xC7 && lay.reg() == 7:
				refuse("xbegin cannot be probed (its abort target is relative to rip)")
				return
			}
			if why, ok := refusedOneByte[op]; ok {
				refuse(why)
				return
			}
		case map0F:
			if op >= 0x80 && op <= 0x8F {
				inst.Flow = FlowJcc
			}
			if why, ok := refusedTwoByte[op]; ok {
				refuse(why)
				return
			}
		}
	}
	if inst.Flow != FlowNone && lay.opsize && !lay.rexW() {
		// AMD truncates the target to 16 bits, Intel ignores the prefix:
		// which one runs the program is not known here. REX.W overrides
		// 66 on both, as in the "data16 data16 rex.W call
		// __tls_get_addr" of every general-dynamic TLS access.
		inst.Reason = "branch with an operand-size (0x66) prefix cannot be probed (its target size differs between Intel and AMD)"
		inst.Class = ClassRefuse
		return
	}
	if inst.RIPRel && lay.addrsize {
		inst.Reason = "rip-relative operand with an address-size (0x67) prefix cannot be probed (it addresses eip+disp32, truncated to 32 bits)"
		inst.Class = ClassRefuse
		return
	}
	if inst.Flow == FlowCallIndirect {
		inst.Class = ClassEmulate
	}
}
