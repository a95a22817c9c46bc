#!/usr/bin/env python3
"""Writes seeds/btf/fd-iter: the few records of a real kernel's BTF that the fd
iterator's two programs read (their context struct, task_struct, file, inode,
socket, sock, tcp_sock, inet_connection_sock, request_sock_queue, net and
ns_common with only the members they need, the anonymous
structs and unions around them, their types and the function they attach
to), renumbered into a blob of about a kilobyte and a half. The whole vmlinux
BTF (megabytes) is too large a seed for a fuzzer.

    fuzz/btf_seed.py [/sys/kernel/btf/vmlinux]
"""
import os
import struct
import sys

WANTED = {
    "bpf_iter__task_file": ["meta", "task", "fd", "file"],
    "bpf_iter_meta": ["seq"],
    "task_struct": ["tgid", "pid"],
    "file": ["f_inode", "private_data"],
    "inode": ["i_mode", "i_ino"],
    "socket": ["sk"],
    "sock": ["__sk_common", "sk_protocol", "sk_type", "sk_err"],
    "sock_common": ["skc_family", "skc_state", "skc_dport", "skc_daddr", "skc_v6_daddr", "skc_flags",
                    "skc_num", "skc_rcv_saddr", "skc_v6_rcv_saddr", "skc_bound_dev_if", "skc_cookie",
                    "skc_net"],
    "tcp_sock": ["srtt_us", "snd_nxt", "snd_una", "bytes_acked", "bytes_received"],
    "inet_connection_sock": ["icsk_accept_queue"],
    "request_sock_queue": ["qlen"],
    "net": ["ns"],
    "ns_common": ["inum"],
}
FUNCTION = "bpf_iter_task_file"
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF = 1, 2, 3, 4, 5, 6, 7, 8
QUALIFIERS = {TYPEDEF, 9, 10, 11, 18}  # typedef, volatile, const, restrict, type_tag
FUNC, FUNC_PROTO, ENUM64 = 12, 13, 19


def extra_len(kind, vlen):
    if kind in (INT, 14, 17):
        return 4
    if kind == ARRAY:
        return 12
    if kind in (STRUCT, UNION, 15, ENUM64):
        return 12 * vlen
    if kind in (ENUM, FUNC_PROTO):
        return 8 * vlen
    return 0


def parse(blob):
    hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<5I", blob, 4)
    types = blob[hdr_len + type_off : hdr_len + type_off + type_len]
    strings = blob[hdr_len + str_off : hdr_len + str_off + str_len]
    records, at = [None], 0  # id 0 is void
    while at < len(types):
        name_off, info, size_type = struct.unpack_from("<3I", types, at)
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        n = extra_len(kind, vlen)
        records.append([name_off, info, size_type, types[at + 12 : at + 12 + n]])
        at += 12 + n
    return records, strings


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "/sys/kernel/btf/vmlinux"
    records, strings = parse(open(path, "rb").read())
    name = lambda off: strings[off : strings.index(b"\0", off)].decode()
    kind = lambda i: (records[i][1] >> 24) & 0x1F
    vlen = lambda i: records[i][1] & 0xFFFF
    members = lambda i: [struct.unpack_from("<3I", records[i][3], 12 * m) for m in range(vlen(i))]
    first = lambda k, n: next(i for i in range(1, len(records)) if kind(i) == k and name(records[i][0]) == n)

    def resolve(i):
        while i and kind(i) in QUALIFIERS:
            i = records[i][2]
        return i

    keep = {}  # struct or union id -> indices of the members kept

    def path_to(sid, member):
        sid = resolve(sid)
        if kind(sid) not in (STRUCT, UNION):
            return False
        for m, (m_name, m_type, _) in enumerate(members(sid)):
            if (m_name and name(m_name) == member) or (not m_name and path_to(m_type, member)):
                keep.setdefault(sid, set()).add(m)
                return True
        return False

    for strukt, wanted in WANTED.items():
        sid = first(STRUCT, strukt)
        keep.setdefault(sid, set())
        for member in wanted:
            assert path_to(sid, member), f"{strukt}.{member}"
    func = first(FUNC, FUNCTION)

    # Every type the kept records refer to; a pointer to a type not kept points to void.
    used, todo = set(), list(keep) + [func]
    for sid, ms in keep.items():
        todo += [members(sid)[m][1] for m in ms]
    while todo:
        i = todo.pop()
        if not i or i in used:
            continue
        used.add(i)
        k = kind(i)
        if k in QUALIFIERS or k == FUNC or (k == PTR and resolve(records[i][2]) in keep):
            todo.append(records[i][2])
        elif k == FUNC_PROTO:
            todo.append(records[i][2])
            todo += [struct.unpack_from("<2I", records[i][3], 8 * p)[1] for p in range(vlen(i))]
        elif k == ARRAY:
            todo += list(struct.unpack_from("<2I", records[i][3], 0))

    ids = {old: new for new, old in enumerate(sorted(used), 1)}
    ref = lambda i: ids.get(i, 0)
    names, table = {}, bytearray(b"\0")

    def string(off):
        if not off:
            return 0
        s = name(off).encode()
        if s not in names:
            names[s] = len(table)
            table.extend(s + b"\0")
        return names[s]

    out = bytearray()
    for old in sorted(used):
        name_off, info, size_type, extra = records[old]
        k = kind(old)
        if k in QUALIFIERS or k in (PTR, FUNC, FUNC_PROTO):
            size_type = ref(size_type)
        if k in (STRUCT, UNION):
            kept = [members(old)[m] for m in sorted(keep.get(old, ()))]
            info = (info & ~0xFFFF) | len(kept)
            extra = b"".join(struct.pack("<3I", string(n), ref(t), o) for n, t, o in kept)
        elif k == FUNC_PROTO:
            params = [struct.unpack_from("<2I", extra, 8 * p) for p in range(vlen(old))]
            extra = b"".join(struct.pack("<2I", string(n), ref(t)) for n, t in params)
        elif k == ARRAY:
            elem, index, n = struct.unpack_from("<3I", extra)
            extra = struct.pack("<3I", ref(elem), ref(index), n)
        elif k in (ENUM, ENUM64):
            info, extra = info & ~0xFFFF, b""
        out += struct.pack("<3I", string(name_off), info, size_type) + extra
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(out), len(out), len(table))
    seed = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", "btf", "fd-iter")
    open(seed, "wb").write(header + out + table)
    print(f"{seed}: {len(used)} types, {len(header + out + table)} bytes")


main()
