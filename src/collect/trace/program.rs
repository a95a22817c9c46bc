//! The tracer's two BPF programs, assembled from this kernel's field offsets.
//!
//! The birth program runs on the raw tracepoint `sys_exit` (every system
//! call's return, in the calling thread) and returns at once unless the call
//! was a `connect()` that started (0 or `-libc::EINPROGRESS`) or an `accept()` /
//! `accept4()` that returned an fd:
//!
//! ```text
//! nr = regs->orig_ax;  fd = accept ? ret : regs->di;
//! file = current->files->fdt->fd[fd]   (fd < max_fds);
//! sk = ((struct socket *)file->private_data)->sk;  return unless sk->sk_protocol == TCP;
//! births[sk] = { file->f_inode->i_ino, pid_tgid, ktime, stackid(USER), comm, 8 words at user sp };
//! counts[stackid].born++   (tally[NO_STACK]++ without one);  tally[RECORDED or NOT_RECORDED]++
//! ```
//!
//! The end program runs on the raw tracepoint `inet_sock_set_state` and
//! counts a socket born in the window that reaches TCP_CLOSE, then forgets it:
//!
//! ```text
//! if (newstate != TCP_CLOSE || !(b = births[sk])) return;
//! delete births[sk];  tally[ENDED]++;  counts[b.stackid].closed++;
//! ```
//!
//! Both only read the kernel and the thread's own stack; what they write is
//! their own maps.

use super::record::{RECORD, STACK_ID, WORDS, WORDS_AT};
use crate::collect::bpf::asm::{
    ADD, ALU64, Asm, JEQ, JGE, JNE, JSLT, K, LSH, Label, MEM, R10, ST, X, size_bits,
};
use crate::collect::btf::Field;

const MAP_LOOKUP_ELEM: i32 = 1;
const MAP_UPDATE_ELEM: i32 = 2;
const MAP_DELETE_ELEM: i32 = 3;
const KTIME_GET_NS: i32 = 5;
const GET_CURRENT_PID_TGID: i32 = 14;
const GET_CURRENT_COMM: i32 = 16;
const GET_STACKID: i32 = 27;
const GET_CURRENT_TASK: i32 = 35;
const PROBE_READ_USER: i32 = 112;
/// `BPF_F_USER_STACK`: the thread's user-space stack, not the kernel's.
const USER_STACK: i32 = 1 << 8;
/// The kernel's number for TCP_CLOSE.
const TCP_CLOSE: i32 = 7;

/// Where on the program's stack: the key (the socket's address), the record, scratch, a map index.
const KEY: i16 = -8;
const REC: i16 = KEY - RECORD as i16;
const TMP: i16 = REC - 8;
const IDX: i16 = TMP - 8;

/// The slots of the `tally` map: births whose stack could not be stored,
/// records stored, records that could not be stored, records ended.
#[derive(Clone, Copy)]
pub enum Tally {
    NoStack,
    Recorded,
    NotRecorded,
    Ended,
}
pub const TALLY_SLOTS: u32 = 4;

/// This kernel's offsets of what the birth program reads.
pub struct Offsets {
    pub orig_ax: Field,
    pub di: Field,
    pub sp: Field,
    pub files: Field,
    pub fdt: Field,
    pub max_fds: Field,
    pub fd: Field,
    pub f_inode: Field,
    pub private_data: Field,
    pub i_ino: Field,
    pub socket_sk: Field,
    pub sk_protocol: Field,
}

/// The fds of the maps the programs use.
#[derive(Clone, Copy)]
pub struct MapFds {
    pub births: i32,
    pub stacks: i32,
    pub counts: i32,
    pub tally: i32,
}

/// The system call numbers the birth program keeps.
pub struct Calls {
    pub connect: i32,
    pub accept: i32,
    pub accept4: i32,
}

/// The birth program's bytes.
pub fn births(o: &Offsets, m: MapFds, calls: &Calls) -> Vec<u8> {
    let mut a = Asm::default();
    a.mov(6, 1);
    a.load(9, 6, field(0, 8)); // r9 = regs
    read(&mut a, 8, 9, o.orig_ax); // r8 = nr (a read; never 0 for these calls)
    a.load(7, 6, field(8, 8)); // r7 = ret
    a.jump_imm(JEQ, 8, calls.connect, Label::Connect);
    a.jump_imm(JEQ, 8, calls.accept, Label::Accept);
    a.jump_imm(JNE, 8, calls.accept4, Label::Out);
    a.place(Label::Accept);
    a.jump_imm(JSLT, 7, 0, Label::Out);
    a.goto(Label::Socket);
    a.place(Label::Connect);
    a.jump_imm(JEQ, 7, 0, Label::Connected);
    a.jump_imm(JNE, 7, -libc::EINPROGRESS, Label::Out);
    a.place(Label::Connected);
    read(&mut a, 7, 9, o.di); // r7 = the fd connect() was given
    a.place(Label::Socket);
    socket_of_fd(&mut a, o);
    record(&mut a, o, m);
    count_birth(&mut a, m);
    a.out();
    a.finish()
}

/// r8 = the `struct sock` of fd r7 of the current task, its address at
/// `KEY`, its inode number in the record; out unless it is TCP.
fn socket_of_fd(a: &mut Asm, o: &Offsets) {
    a.call(GET_CURRENT_TASK);
    a.mov(8, 0);
    read(a, 8, 8, o.files);
    read(a, 8, 8, o.fdt);
    a.probe_read(TMP, 4, 8, o.max_fds.offset);
    a.load(1, R10, field(TMP, 4));
    a.jump_reg(JGE, 7, 1, Label::Out);
    read(a, 8, 8, o.fd);
    a.op(ALU64 | LSH | K, 7, 0, 0, 3);
    a.op(ALU64 | ADD | X, 8, 7, 0, 0); // r8 += fd * 8
    read(a, 8, 8, field(0, 8)); // the file
    read(a, 7, 8, o.f_inode);
    a.probe_read(REC, 8, 7, o.i_ino.offset);
    read(a, 8, 8, o.private_data);
    read(a, 8, 8, o.socket_sk);
    a.store(KEY, 8, 8);
    a.probe_read(TMP, o.sk_protocol.size, 8, o.sk_protocol.offset);
    a.load(1, R10, field(TMP, o.sk_protocol.size));
    a.jump_imm(JNE, 1, libc::IPPROTO_TCP, Label::Out);
}

/// Fills the rest of the record and stores it under the socket's address;
/// leaves the update's result in r7.
fn record(a: &mut Asm, o: &Offsets, m: MapFds) {
    a.call(GET_CURRENT_PID_TGID);
    a.store(REC + 8, 0, 8);
    a.call(KTIME_GET_NS);
    a.store(REC + 16, 0, 8);
    a.mov(1, 6);
    a.load_map(2, m.stacks);
    a.mov_imm(3, USER_STACK);
    a.call(GET_STACKID);
    a.store(REC + STACK_ID as i16, 0, 8);
    a.mov(1, R10);
    a.add_imm(1, i32::from(REC) + 32);
    a.mov_imm(2, 16);
    a.call(GET_CURRENT_COMM);
    a.probe_read(TMP, 8, 9, o.sp.offset);
    a.mov(1, R10);
    a.add_imm(1, i32::from(REC) + WORDS_AT as i32);
    a.mov_imm(2, (WORDS * 8) as i32);
    a.load(3, R10, field(TMP, 8));
    a.call(PROBE_READ_USER);
    a.load_map(1, m.births);
    a.mov(2, R10);
    a.add_imm(2, i32::from(KEY));
    a.mov(3, R10);
    a.add_imm(3, i32::from(REC));
    a.mov_imm(4, 0);
    a.call(MAP_UPDATE_ELEM);
    a.mov(7, 0);
}

/// `counts[stackid].born++`, or `tally[NO_STACK]++` without a stack;
/// then `tally[RECORDED]++`, or `tally[NOT_RECORDED]++` if the record
/// could not be stored (r7 != 0).
fn count_birth(a: &mut Asm, m: MapFds) {
    a.load(8, R10, field(REC + STACK_ID as i16, 8));
    a.jump_imm(JSLT, 8, 0, Label::NoStack);
    a.store(IDX, 8, 4);
    bump(a, m.counts, 0, Label::Counted);
    a.place(Label::NoStack);
    index(a, Tally::NoStack);
    bump(a, m.tally, 0, Label::Counted);
    a.place(Label::Counted);
    index(a, Tally::Recorded);
    a.jump_imm(JEQ, 7, 0, Label::Write);
    index(a, Tally::NotRecorded);
    a.place(Label::Write);
    bump(a, m.tally, 0, Label::Out);
}

/// `*(u32 *)(fp + IDX) = slot`.
fn index(a: &mut Asm, slot: Tally) {
    a.op(ST | MEM | size_bits(4), R10, 0, IDX, slot as i32);
}

/// The end program's bytes.
pub fn ends(m: MapFds) -> Vec<u8> {
    let mut a = Asm::default();
    a.load(2, 1, field(16, 8)); // newstate
    a.jump_imm(JNE, 2, TCP_CLOSE, Label::Out);
    a.load(2, 1, field(0, 8)); // sk
    a.store(KEY, 2, 8);
    a.load_map(1, m.births);
    a.mov(2, R10);
    a.add_imm(2, i32::from(KEY));
    a.call(MAP_LOOKUP_ELEM);
    a.jump_imm(JEQ, 0, 0, Label::Out);
    a.load(7, 0, field(STACK_ID as i16, 8));
    a.load_map(1, m.births);
    a.mov(2, R10);
    a.add_imm(2, i32::from(KEY));
    a.call(MAP_DELETE_ELEM);
    index(&mut a, Tally::Ended);
    bump(&mut a, m.tally, 0, Label::Counted);
    a.place(Label::Counted);
    a.jump_imm(JSLT, 7, 0, Label::Out);
    a.store(IDX, 7, 4);
    bump(&mut a, m.counts, 8, Label::Out);
    a.out();
    a.finish()
}

/// `(*(u64 *)(map[*(u32 *)(fp + IDX)] + at))++`, then on to `then`.
fn bump(a: &mut Asm, map: i32, at: i32, then: Label) {
    a.load_map(1, map);
    a.mov(2, R10);
    a.add_imm(2, i32::from(IDX));
    a.call(MAP_LOOKUP_ELEM);
    a.jump_imm(JEQ, 0, 0, then);
    a.add_imm(0, at);
    a.count(0);
    a.goto(then);
}

/// `r<dst> = *(u64 *)(r<from> + field)` through `bpf_probe_read_kernel`; out if it is 0.
fn read(a: &mut Asm, dst: u8, from: u8, f: Field) {
    a.probe_read(TMP, 8, from, f.offset);
    a.load(dst, R10, field(TMP, 8));
    a.jump_imm(JEQ, dst, 0, Label::Out);
}

fn field(offset: i16, size: usize) -> Field {
    Field { offset, size }
}
