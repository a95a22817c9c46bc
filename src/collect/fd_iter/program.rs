//! The iterators' BPF programs, assembled from the field offsets of this
//! kernel. Each runs once per open fd of every task whose fd table the
//! iterator visits, and writes one record for each fd of a thread-group
//! leader. The fd-table program, for every fd:
//!
//! ```text
//! if (!task || !file || task->tgid != task->pid) return 0;
//! rec = { task->tgid, fd, 0 };
//! inode = file->f_inode;
//! if (inode && (inode->i_mode & S_IFMT) == S_IFSOCK) rec.inode = inode->i_ino;
//! bpf_seq_write(meta->seq, &rec, 16);
//! return 0;
//! ```
//!
//! The socket program, for socket fds only: the same head, then what the
//! kernel still holds of the socket, copied field by field with
//! `bpf_probe_read_kernel` (the socket is reached through `file->private_data`,
//! which carries no type the verifier could follow):
//!
//! ```text
//! ... as above, but return 0 unless the fd is a socket;
//! sk = ((struct socket *)file->private_data)->sk;  if (!sk) return 0;
//! for each copied field: bpf_probe_read_kernel(&rec.field, size, (void *)sk + offset);
//! net = sk->skc_net.net;  if (net) rec.netns = net->ns.inum;
//! bpf_seq_write(meta->seq, &rec, SOCKET_RECORD);
//! ```

use super::sockets::{NETNS, SOCKET_RECORD, SockOffsets};
use super::{Offsets, RECORD, S_IFMT, S_IFSOCK};
use crate::collect::bpf::asm::{ALU64, AND, Asm, JEQ, JNE, K, Label, MEM, R10, ST, size_bits};
use crate::collect::btf::Field;

const BPF_FUNC_SEQ_WRITE: i32 = 127;

/// The fd-table program's bytes, for this kernel's offsets.
pub(super) fn assemble(o: &Offsets) -> Vec<u8> {
    let mut a = Asm::default();
    let rec = -(RECORD as i16);
    head(&mut a, o, rec);
    a.op(ST | MEM | size_bits(8), R10, 0, rec + 8, 0);
    socket_inode(&mut a, o, rec, Label::Write);
    a.place(Label::Write);
    write(&mut a, o, rec, RECORD);
    a.out();
    a.finish()
}

/// The socket program's bytes, for this kernel's offsets.
pub(super) fn assemble_sockets(o: &Offsets, s: &SockOffsets) -> Vec<u8> {
    let mut a = Asm::default();
    let rec = -(SOCKET_RECORD as i16);
    head(&mut a, o, rec);
    socket_inode(&mut a, o, rec, Label::Out);
    a.load(7, 3, s.private_data); // r7 = file->private_data, the struct socket
    a.jump_imm(JEQ, 7, 0, Label::Out);
    for at in (16..SOCKET_RECORD as i16).step_by(8) {
        a.op(ST | MEM | size_bits(8), R10, 0, rec + at, 0);
    }
    a.probe_read(rec + 16, 8, 7, s.socket_sk.offset);
    a.load(
        8,
        R10,
        Field {
            offset: rec + 16,
            size: 8,
        },
    ); // r8 = sk
    a.jump_imm(JEQ, 8, 0, Label::Out);
    a.op(ST | MEM | size_bits(8), R10, 0, rec + 16, 0);
    for &(at, field) in &s.copies {
        a.probe_read(rec + at, field.size, 8, field.offset);
    }
    // The namespace, through the socket's `struct net`, its pointer read
    // into the record's slot first (8 bytes there, zeroed above).
    let slot = rec + NETNS.0;
    a.probe_read(slot, 8, 8, s.net.offset);
    a.load(
        9,
        R10,
        Field {
            offset: slot,
            size: 8,
        },
    );
    a.op(ST | MEM | size_bits(8), R10, 0, slot, 0);
    a.jump_imm(JEQ, 9, 0, Label::Write);
    a.probe_read(slot, NETNS.1, 9, s.net_inum.offset);
    a.place(Label::Write);
    write(&mut a, o, rec, SOCKET_RECORD);
    a.out();
    a.finish()
}

/// `r6 = ctx`; out unless there is a task and a file and the task is a
/// thread-group leader; `rec = { tgid, fd }`; leaves the file in r3.
fn head(a: &mut Asm, o: &Offsets, rec: i16) {
    a.mov(6, 1);
    a.load(2, 6, o.task);
    a.jump_imm(JEQ, 2, 0, Label::Out);
    a.load(3, 6, o.file);
    a.jump_imm(JEQ, 3, 0, Label::Out);
    a.load(4, 2, o.tgid);
    a.load(5, 2, o.pid);
    a.jump_reg(JNE, 4, 5, Label::Out); // a thread with its own fd table
    a.store(rec, 4, 4);
    a.load(4, 6, o.fd);
    a.store(rec + 4, 4, 4);
}

/// `rec.inode = inode->i_ino` when the file (r3) is a socket, else goto `other`.
fn socket_inode(a: &mut Asm, o: &Offsets, rec: i16, other: Label) {
    a.load(4, 3, o.f_inode);
    a.jump_imm(JEQ, 4, 0, other);
    a.load(5, 4, o.i_mode);
    a.op(ALU64 | AND | K, 5, 0, 0, S_IFMT);
    a.jump_imm(JNE, 5, S_IFSOCK, other);
    a.load(5, 4, o.i_ino);
    a.store(rec + 8, 5, 8);
}

/// `bpf_seq_write(meta->seq, fp + rec, len)`.
fn write(a: &mut Asm, o: &Offsets, rec: i16, len: usize) {
    a.load(1, 6, o.meta);
    a.load(1, 1, o.seq);
    a.mov(2, R10);
    a.add_imm(2, i32::from(rec));
    a.mov_imm(3, len as i32);
    a.call(BPF_FUNC_SEQ_WRITE);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::bpf::asm::{CALL, EXIT, JMP, LDX};

    fn field(offset: i16, size: usize) -> Field {
        Field { offset, size }
    }

    fn offsets() -> Offsets {
        Offsets {
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
        }
    }

    #[test]
    fn jumps_land_on_their_labels() {
        let code = assemble(&offsets());
        let insns: Vec<&[u8]> = code.chunks(8).collect();
        assert_eq!(insns.len(), 27);
        let off = |i: usize| i16::from_le_bytes([insns[i][2], insns[i][3]]);
        // `if r2 == 0 goto out` (insn 2) lands on `r0 = 0` (insn 25).
        assert_eq!(2 + 1 + off(2) as usize, 25);
        // `if r4 != r5 goto out` (insn 7) too.
        assert_eq!(7 + 1 + off(7) as usize, 25);
        // `if r4 == 0 goto write` (insn 13) lands on the `meta` load (insn 19).
        assert_eq!(13 + 1 + off(13) as usize, 19);
        assert_eq!(insns[26][0], JMP | EXIT);
        // i_mode is read as a half word, i_ino as a double word.
        assert_eq!(insns[14][0], LDX | MEM | 0x08);
        assert_eq!(insns[17][0], LDX | MEM | 0x18);
    }

    #[test]
    fn the_socket_program_reads_each_field_once_and_writes_once() {
        let s = SockOffsets {
            private_data: field(200, 8),
            socket_sk: field(24, 8),
            copies: vec![(16, field(16, 2)), (48, field(1500, 4))],
            net: field(48, 8),
            net_inum: field(200, 4),
        };
        let code = assemble_sockets(&offsets(), &s);
        let insns: Vec<&[u8]> = code.chunks(8).collect();
        let calls: Vec<i32> = insns
            .iter()
            .filter(|i| i[0] == JMP | CALL)
            .map(|i| i32::from_le_bytes([i[4], i[5], i[6], i[7]]))
            .collect();
        // The socket pointer, the two fields, the namespace's `struct net`
        // and its inode, then the write.
        assert_eq!(calls, [113, 113, 113, 113, 113, 127]);
        let last = insns.len() - 1;
        assert_eq!(insns[last][0], JMP | EXIT);
        // Every jump forward lands inside the program.
        for (i, insn) in insns.iter().enumerate() {
            if insn[0] & 0x07 == JMP && insn[0] & 0xf0 != 0x80 && insn[0] & 0xf0 != EXIT {
                let off = i16::from_le_bytes([insn[2], insn[3]]);
                assert!(i + 1 + off as usize <= last, "insn {i}");
            }
        }
    }
}
