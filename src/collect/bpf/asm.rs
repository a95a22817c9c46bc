//! A few BPF instructions and forward jumps: enough to assemble connleak's
//! programs (the fd iterator's, the tracer's) at run time from this kernel's
//! field offsets, with no compiler and no loader library.

use crate::collect::btf::Field;

/// BPF instruction classes, sizes, modes and operations (`linux/bpf_common.h`, `linux/bpf.h`).
pub const LD: u8 = 0x00;
pub const LDX: u8 = 0x01;
pub const ST: u8 = 0x02;
pub const STX: u8 = 0x03;
pub const JMP: u8 = 0x05;
pub const ALU64: u8 = 0x07;
pub const IMM: u8 = 0x00;
pub const MEM: u8 = 0x60;
pub const ATOMIC: u8 = 0xc0;
pub const K: u8 = 0x00;
pub const X: u8 = 0x08;
pub const MOV: u8 = 0xb0;
pub const ADD: u8 = 0x00;
pub const AND: u8 = 0x50;
pub const LSH: u8 = 0x60;
pub const JEQ: u8 = 0x10;
pub const JGE: u8 = 0x30;
pub const JNE: u8 = 0x50;
pub const JSLT: u8 = 0xc0;
pub const CALL: u8 = 0x80;
pub const EXIT: u8 = 0x90;
/// Frame pointer: the stack is below it.
pub const R10: u8 = 10;
/// `src_reg` of a 64-bit immediate load that names a map by its fd.
const PSEUDO_MAP_FD: u8 = 1;
/// `bpf_probe_read_kernel`.
const PROBE_READ_KERNEL: i32 = 113;

/// `BPF_W`, `BPF_H`, `BPF_B`, `BPF_DW` for a field of this many bytes.
pub fn size_bits(bytes: usize) -> u8 {
    match bytes {
        4 => 0x00,
        2 => 0x08,
        1 => 0x10,
        _ => 0x18,
    }
}

/// A jump target, resolved when the program is finished.
#[derive(Clone, Copy, PartialEq)]
pub enum Label {
    Write,
    Out,
    Connect,
    Connected,
    Accept,
    Socket,
    NoStack,
    Counted,
}

/// Instructions, with forward jumps patched once their labels are placed.
#[derive(Default)]
pub struct Asm {
    pub code: Vec<[u8; 8]>,
    pub jumps: Vec<(usize, Label)>,
    placed: Vec<(Label, usize)>,
}

impl Asm {
    pub fn op(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) {
        let [o0, o1] = off.to_le_bytes();
        let [i0, i1, i2, i3] = imm.to_le_bytes();
        self.code
            .push([code, dst | (src << 4), o0, o1, i0, i1, i2, i3]);
    }
    /// `dst = *(size *)(src + field)`.
    pub fn load(&mut self, dst: u8, src: u8, field: Field) {
        self.op(LDX | MEM | size_bits(field.size), dst, src, field.offset, 0);
    }
    /// `*(u32 or u64 *)(fp + at) = src`.
    pub fn store(&mut self, at: i16, src: u8, bytes: usize) {
        self.op(STX | MEM | size_bits(bytes), R10, src, at, 0);
    }
    pub fn mov(&mut self, dst: u8, src: u8) {
        self.op(ALU64 | MOV | X, dst, src, 0, 0);
    }
    pub fn mov_imm(&mut self, dst: u8, imm: i32) {
        self.op(ALU64 | MOV | K, dst, 0, 0, imm);
    }
    pub fn add_imm(&mut self, dst: u8, imm: i32) {
        self.op(ALU64 | ADD | K, dst, 0, 0, imm);
    }
    /// `dst = map` (the map's fd, which the kernel turns into the map): two slots.
    pub fn load_map(&mut self, dst: u8, map_fd: i32) {
        self.op(LD | IMM | size_bits(8), dst, PSEUDO_MAP_FD, 0, map_fd);
        self.op(0, 0, 0, 0, 0);
    }
    /// `lock *(u64 *)(dst + 0) += 1`, with r1 as scratch.
    pub fn count(&mut self, dst: u8) {
        self.mov_imm(1, 1);
        self.op(STX | ATOMIC | size_bits(8), dst, 1, 0, i32::from(ADD));
    }
    /// `bpf_probe_read_kernel(fp + at, size, (void *)r<from> + offset)`.
    pub fn probe_read(&mut self, at: i16, size: usize, from: u8, offset: i16) {
        self.mov(1, R10);
        self.add_imm(1, i32::from(at));
        self.mov_imm(2, size as i32);
        self.mov(3, from);
        self.add_imm(3, i32::from(offset));
        self.call(PROBE_READ_KERNEL);
    }
    /// `call helper`: arguments in r1 to r5, the result in r0; r6 to r9 kept.
    pub fn call(&mut self, helper: i32) {
        self.op(JMP | CALL, 0, 0, 0, helper);
    }
    /// `if dst <cond> imm goto label`.
    pub fn jump_imm(&mut self, cond: u8, dst: u8, imm: i32, to: Label) {
        self.jumps.push((self.code.len(), to));
        self.op(JMP | cond | K, dst, 0, 0, imm);
    }
    /// `if dst <cond> src goto label`.
    pub fn jump_reg(&mut self, cond: u8, dst: u8, src: u8, to: Label) {
        self.jumps.push((self.code.len(), to));
        self.op(JMP | cond | X, dst, src, 0, 0);
    }
    /// `goto label`.
    pub fn goto(&mut self, to: Label) {
        self.jumps.push((self.code.len(), to));
        self.op(JMP, 0, 0, 0, 0);
    }
    pub fn place(&mut self, label: Label) {
        self.placed.push((label, self.code.len()));
    }
    /// `r0 = 0; exit`, at the `Out` label.
    pub fn out(&mut self) {
        self.place(Label::Out);
        self.mov_imm(0, 0);
        self.op(JMP | EXIT, 0, 0, 0, 0);
    }
    pub fn finish(mut self) -> Vec<u8> {
        for &(at, label) in &self.jumps {
            let target = self.placed.iter().find(|(l, _)| *l == label).map(|p| p.1);
            let off = target.map_or(0, |t| t as i16 - at as i16 - 1);
            self.code[at][2..4].copy_from_slice(&off.to_le_bytes());
        }
        self.code.concat()
    }
}
