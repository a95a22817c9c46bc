//! The iterator's BPF program, assembled from the field offsets of this
//! kernel. Run once per open fd of every task whose fd table the iterator
//! visits, it writes a 16-byte record for each fd of a thread-group leader:
//!
//! ```text
//! if (!task || !file || task->tgid != task->pid) return 0;
//! rec = { task->tgid, fd, 0 };
//! inode = file->f_inode;
//! if (inode && (inode->i_mode & S_IFMT) == S_IFSOCK) rec.inode = inode->i_ino;
//! bpf_seq_write(meta->seq, &rec, 16);
//! return 0;
//! ```

use super::{Offsets, RECORD, S_IFMT, S_IFSOCK};
use crate::collect::btf::Field;

/// BPF instruction classes, sizes, modes and operations (`linux/bpf_common.h`, `linux/bpf.h`).
const LDX: u8 = 0x01;
const ST: u8 = 0x02;
const STX: u8 = 0x03;
const JMP: u8 = 0x05;
const ALU64: u8 = 0x07;
const MEM: u8 = 0x60;
const K: u8 = 0x00;
const X: u8 = 0x08;
const MOV: u8 = 0xb0;
const ADD: u8 = 0x00;
const AND: u8 = 0x50;
const JEQ: u8 = 0x10;
const JNE: u8 = 0x50;
const CALL: u8 = 0x80;
const EXIT: u8 = 0x90;
/// Frame pointer: the stack is below it.
const R10: u8 = 10;

/// `BPF_W`, `BPF_H`, `BPF_B`, `BPF_DW` for a field of this many bytes.
fn size_bits(bytes: usize) -> u8 {
    match bytes {
        4 => 0x00,
        2 => 0x08,
        1 => 0x10,
        _ => 0x18,
    }
}

/// A jump target, resolved when the program is finished.
#[derive(Clone, Copy, PartialEq)]
enum Label {
    Write,
    Out,
}

/// Instructions, with forward jumps patched once their labels are placed.
#[derive(Default)]
struct Asm {
    code: Vec<[u8; 8]>,
    jumps: Vec<(usize, Label)>,
    placed: Vec<(Label, usize)>,
}

impl Asm {
    fn op(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) {
        let [o0, o1] = off.to_le_bytes();
        let [i0, i1, i2, i3] = imm.to_le_bytes();
        self.code
            .push([code, dst | (src << 4), o0, o1, i0, i1, i2, i3]);
    }
    /// `dst = *(size *)(src + field)`.
    fn load(&mut self, dst: u8, src: u8, field: Field) {
        self.op(LDX | MEM | size_bits(field.size), dst, src, field.offset, 0);
    }
    fn mov(&mut self, dst: u8, src: u8) {
        self.op(ALU64 | MOV | X, dst, src, 0, 0);
    }
    fn mov_imm(&mut self, dst: u8, imm: i32) {
        self.op(ALU64 | MOV | K, dst, 0, 0, imm);
    }
    /// `if dst <cond> imm goto label`.
    fn jump_imm(&mut self, cond: u8, dst: u8, imm: i32, to: Label) {
        self.jumps.push((self.code.len(), to));
        self.op(JMP | cond | K, dst, 0, 0, imm);
    }
    fn place(&mut self, label: Label) {
        self.placed.push((label, self.code.len()));
    }
    fn finish(mut self) -> Vec<u8> {
        for &(at, label) in &self.jumps {
            let target = self.placed.iter().find(|(l, _)| *l == label).map(|p| p.1);
            let off = target.map_or(0, |t| t as i16 - at as i16 - 1);
            self.code[at][2..4].copy_from_slice(&off.to_le_bytes());
        }
        self.code.concat()
    }
}

/// The program's bytes, for this kernel's offsets.
pub(super) fn assemble(o: &Offsets) -> Vec<u8> {
    let mut a = Asm::default();
    let rec = -(RECORD as i16);
    a.mov(6, 1); // r6 = ctx
    a.load(2, 6, o.task);
    a.jump_imm(JEQ, 2, 0, Label::Out);
    a.load(3, 6, o.file);
    a.jump_imm(JEQ, 3, 0, Label::Out);
    a.load(4, 2, o.tgid);
    a.load(5, 2, o.pid);
    a.jumps.push((a.code.len(), Label::Out));
    a.op(JMP | JNE | X, 4, 5, 0, 0); // a thread with its own fd table
    a.op(STX | MEM | size_bits(4), R10, 4, rec, 0);
    a.load(4, 6, o.fd);
    a.op(STX | MEM | size_bits(4), R10, 4, rec + 4, 0);
    a.op(ST | MEM | size_bits(8), R10, 0, rec + 8, 0);
    a.load(3, 3, o.f_inode);
    a.jump_imm(JEQ, 3, 0, Label::Write);
    a.load(4, 3, o.i_mode);
    a.op(ALU64 | AND | K, 4, 0, 0, S_IFMT);
    a.jump_imm(JNE, 4, S_IFSOCK, Label::Write);
    a.load(4, 3, o.i_ino);
    a.op(STX | MEM | size_bits(8), R10, 4, rec + 8, 0);
    a.place(Label::Write);
    a.load(1, 6, o.meta);
    a.load(1, 1, o.seq);
    a.mov(2, R10);
    a.op(ALU64 | ADD | K, 2, 0, 0, i32::from(rec));
    a.mov_imm(3, RECORD as i32);
    a.op(JMP | CALL, 0, 0, 0, super::BPF_FUNC_SEQ_WRITE);
    a.place(Label::Out);
    a.mov_imm(0, 0);
    a.op(JMP | EXIT, 0, 0, 0, 0);
    a.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(offset: i16, size: usize) -> Field {
        Field { offset, size }
    }

    #[test]
    fn jumps_land_on_their_labels() {
        let o = Offsets {
            meta: field(0, 8),
            task: field(8, 8),
            fd: field(16, 4),
            file: field(24, 8),
            seq: field(0, 8),
            tgid: field(100, 4),
            pid: field(96, 4),
            f_inode: field(32, 8),
            i_mode: field(0, 2),
            i_ino: field(64, 8),
        };
        let code = assemble(&o);
        let insns: Vec<&[u8]> = code.chunks(8).collect();
        assert_eq!(insns.len(), 27);
        let off = |i: usize| i16::from_le_bytes([insns[i][2], insns[i][3]]);
        // `if r2 == 0 goto out` (insn 2) lands on `r0 = 0` (insn 25).
        assert_eq!(2 + 1 + off(2) as usize, 25);
        // `if r4 != r5 goto out` (insn 7) too.
        assert_eq!(7 + 1 + off(7) as usize, 25);
        // `if r3 == 0 goto write` (insn 13) lands on the `meta` load (insn 19).
        assert_eq!(13 + 1 + off(13) as usize, 19);
        assert_eq!(insns[26][0], JMP | EXIT);
        // i_mode is read as a half word, i_ino as a double word.
        assert_eq!(insns[14][0], LDX | MEM | 0x08);
        assert_eq!(insns[17][0], LDX | MEM | 0x18);
    }
}
