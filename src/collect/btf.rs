//! Just enough of the kernel's BTF (`/sys/kernel/btf/vmlinux`) to place a
//! field: the type id of a named function, and the byte offset and size of a
//! struct member, so that the fd iterator reads
//! `task_struct`, `file` and `inode` at this kernel's offsets, not at
//! offsets guessed at build time. The format is `Documentation/bpf/btf.rst`:
//! a header, a type section of variable-length records numbered from 1, and
//! a string section. Parsing is a pure function of the bytes (fuzzed): a
//! blob may say anything, so every walk through it is bounded — typedef
//! chains and anonymous members nest at most [`MAX_DEPTH`] deep, and each
//! anonymous struct is searched once per lookup, whatever refers to it.

use rustc_hash::FxHashSet;

/// `BTF_KIND_*` numbers used here.
const INT: u32 = 1;
const PTR: u32 = 2;
const STRUCT: u32 = 4;
const UNION: u32 = 5;
const ENUM: u32 = 6;
const TYPEDEF: u32 = 8;
const VOLATILE: u32 = 9;
const CONST: u32 = 10;
const RESTRICT: u32 = 11;
const FUNC: u32 = 12;
const TYPE_TAG: u32 = 18;
const ENUM64: u32 = 19;

const MAGIC: u16 = 0xeb9f;
/// Size of `struct btf_type`: name, info, size-or-type.
const TYPE_LEN: usize = 12;

/// How deep typedefs and qualifiers may chain, and anonymous structs and
/// unions nest, before a blob is refused. A kernel's deepest is a handful;
/// a blob that goes on (or loops) would otherwise overflow the stack.
pub const MAX_DEPTH: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BtfError {
    #[error("not BTF (bad magic or header)")]
    Header,
    #[error("truncated BTF type {0}")]
    Truncated(u32),
    #[error("unknown BTF kind {kind} at type {id}")]
    Kind { kind: u32, id: u32 },
    #[error("BTF has no {0}")]
    Missing(String),
    #[error("BTF type {0} nests typedefs or anonymous members more than {MAX_DEPTH} deep")]
    TooDeep(u32),
    #[error("BTF places {0} beyond the reach of a 16-bit offset")]
    Offset(String),
    #[error("unexpected size of {0} in this kernel's BTF")]
    Size(String),
}

/// A parsed BTF blob: the type records by id (id 0 is `void`).
pub struct Btf<'a> {
    types: &'a [u8],
    strings: &'a [u8],
    /// Offset into `types` of each record, by type id minus one.
    at: Vec<usize>,
}

/// One `struct btf_type` record's fixed part.
#[derive(Clone, Copy)]
struct Type {
    name_off: u32,
    kind: u32,
    vlen: usize,
    kind_flag: bool,
    size_or_type: u32,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Bytes of kind-specific data after a record of `kind` with `vlen` entries.
fn extra(kind: u32, vlen: usize, id: u32) -> Result<usize, BtfError> {
    Ok(match kind {
        INT | 14 | 17 => 4, // INT, VAR, DECL_TAG
        3 => 12,            // ARRAY
        STRUCT | UNION | 15 | ENUM64 => 12 * vlen,
        ENUM | 13 => 8 * vlen, // ENUM, FUNC_PROTO
        PTR | 7 | TYPEDEF | VOLATILE | CONST | RESTRICT | FUNC | 16 | TYPE_TAG => 0,
        _ => return Err(BtfError::Kind { kind, id }),
    })
}

impl<'a> Btf<'a> {
    /// Parses a little-endian BTF blob (the kernel's own byte order on
    /// every architecture connleak is built for).
    pub fn parse(bytes: &'a [u8]) -> Result<Btf<'a>, BtfError> {
        let magic = bytes.get(0..2).ok_or(BtfError::Header)?;
        if u16::from_le_bytes([magic[0], magic[1]]) != MAGIC {
            return Err(BtfError::Header);
        }
        let field = |n: usize| u32_at(bytes, 4 + 4 * n).map(|v| v as usize);
        let (hdr_len, type_off, type_len, str_off, str_len) =
            (|| Some((field(0)?, field(1)?, field(2)?, field(3)?, field(4)?)))()
                .ok_or(BtfError::Header)?;
        let section = |off: usize, len: usize| {
            let start = hdr_len.checked_add(off)?;
            bytes.get(start..start.checked_add(len)?)
        };
        let types = section(type_off, type_len).ok_or(BtfError::Header)?;
        let strings = section(str_off, str_len).ok_or(BtfError::Header)?;
        let mut btf = Btf {
            types,
            strings,
            at: Vec::new(),
        };
        let mut at = 0;
        while at < types.len() {
            let id = btf.at.len() as u32 + 1;
            btf.at.push(at);
            let t = btf.record(id).ok_or(BtfError::Truncated(id))?;
            at += TYPE_LEN + extra(t.kind, t.vlen, id)?;
            if at > types.len() {
                return Err(BtfError::Truncated(id));
            }
        }
        Ok(btf)
    }

    fn record(&self, id: u32) -> Option<Type> {
        let at = *self.at.get((id as usize).checked_sub(1)?)?;
        let info = u32_at(self.types, at + 4)?;
        Some(Type {
            name_off: u32_at(self.types, at)?,
            kind: (info >> 24) & 0x1f,
            vlen: (info & 0xffff) as usize,
            kind_flag: info >> 31 == 1,
            size_or_type: u32_at(self.types, at + 8)?,
        })
    }

    fn name(&self, off: u32) -> &'a [u8] {
        let rest = self.strings.get(off as usize..).unwrap_or_default();
        &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())]
    }

    /// The id of the first type of `kind` named `name`.
    fn find(&self, kind: u32, name: &str) -> Result<u32, BtfError> {
        (1..=self.at.len() as u32)
            .find(|&id| {
                self.record(id)
                    .is_some_and(|t| t.kind == kind && self.name(t.name_off) == name.as_bytes())
            })
            .ok_or_else(|| BtfError::Missing(name.to_string()))
    }

    /// The id of the kernel function `name` (what an iterator program attaches to).
    pub fn function(&self, name: &str) -> Result<u32, BtfError> {
        self.find(FUNC, name)
    }

    /// Follows typedefs and qualifiers to the type they name, and its
    /// record; `None` for `void` or an id with no record.
    fn resolve(&self, mut id: u32) -> Result<Option<(u32, Type)>, BtfError> {
        for _ in 0..MAX_DEPTH {
            let Some(t) = self.record(id) else {
                return Ok(None);
            };
            match t.kind {
                TYPEDEF | VOLATILE | CONST | RESTRICT | TYPE_TAG => id = t.size_or_type,
                _ => return Ok(Some((id, t))),
            }
        }
        Err(BtfError::TooDeep(id))
    }

    /// Size in bytes of a scalar, pointer, enum or struct type.
    fn size(&self, id: u32) -> Result<Option<usize>, BtfError> {
        Ok(self.resolve(id)?.and_then(|(_, t)| match t.kind {
            PTR => Some(8),
            INT | STRUCT | UNION | ENUM | ENUM64 => Some(t.size_or_type as usize),
            _ => None,
        }))
    }

    /// (bit offset, type id) of member `name` of struct or union `id`,
    /// looking into anonymous struct and union members `depth` deep at
    /// most. `searched` holds the anonymous types already looked through
    /// (none of them has `name`), so that a blob whose members refer to one
    /// type many times, or to a type that holds itself, costs one search
    /// of it.
    fn member(
        &self,
        id: u32,
        name: &[u8],
        depth: usize,
        searched: &mut FxHashSet<u32>,
    ) -> Result<Option<(u32, u32)>, BtfError> {
        let Some((id, t)) = self.resolve(id)? else {
            return Ok(None);
        };
        if !matches!(t.kind, STRUCT | UNION) || !searched.insert(id) {
            return Ok(None);
        }
        if depth == 0 {
            return Err(BtfError::TooDeep(id));
        }
        let first = self.at[(id as usize) - 1] + TYPE_LEN;
        for m in (0..t.vlen).map(|i| first + 12 * i) {
            // `parse` checked that every record's members are there.
            let (Some(m_name), Some(m_type), Some(m_off)) = (
                u32_at(self.types, m),
                u32_at(self.types, m + 4),
                u32_at(self.types, m + 8),
            ) else {
                break;
            };
            let bits = if t.kind_flag {
                m_off & 0xff_ffff
            } else {
                m_off
            };
            let found = match self.name(m_name) {
                n if n == name => Some((bits, m_type)),
                b"" => self
                    .member(m_type, name, depth - 1, searched)?
                    .and_then(|(inner, ty)| Some((bits.checked_add(inner)?, ty))),
                _ => None,
            };
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// Byte offset and size of `strukt.field` (a byte-aligned member).
    pub fn field(&self, strukt: &str, field: &str) -> Result<Field, BtfError> {
        let id = self.find(STRUCT, strukt)?;
        let missing = || BtfError::Missing(format!("{strukt}.{field}"));
        let mut searched = FxHashSet::default();
        let (bits, ty) = self
            .member(id, field.as_bytes(), MAX_DEPTH, &mut searched)?
            .ok_or_else(missing)?;
        let size = self.size(ty)?.ok_or_else(missing)?;
        if bits % 8 != 0 {
            return Err(missing());
        }
        let offset =
            i16::try_from(bits / 8).map_err(|_| BtfError::Offset(format!("{strukt}.{field}")))?;
        Ok(Field { offset, size })
    }
}

impl Btf<'_> {
    /// `strukt.field`, which must be `size` bytes long: the programs read it as such.
    pub fn sized(&self, strukt: &str, field: &str, size: usize) -> Result<Field, BtfError> {
        let f = self.field(strukt, field)?;
        if f.size == size {
            Ok(f)
        } else {
            Err(BtfError::Size(format!("{strukt}.{field}")))
        }
    }
}

/// Where a member lies in its struct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub offset: i16,
    pub size: usize,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A BTF blob of the given type records and string table.
    pub(crate) fn blob(types: &[u8], strings: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&MAGIC.to_le_bytes());
        b.extend_from_slice(&[1, 0]);
        for v in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(types);
        b.extend_from_slice(strings);
        b
    }

    fn record(out: &mut Vec<u8>, name: u32, kind: u32, vlen: u32, size_or_type: u32) {
        for v in [name, (kind << 24) | vlen, size_or_type] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn words(out: &mut Vec<u8>, ws: &[u32]) {
        for w in ws {
            out.extend_from_slice(&w.to_le_bytes());
        }
    }

    #[test]
    fn finds_members_through_anonymous_unions_and_typedefs() {
        // strings: 0 "", 1 "int", 5 "s", 7 "a", 9 "b", 11 "f", 13 "u32"
        let strings = b"\0int\0s\0a\0b\0f\0u32\0";
        let mut t = Vec::new();
        record(&mut t, 1, INT, 0, 4); // 1: int
        words(&mut t, &[32]);
        record(&mut t, 13, TYPEDEF, 0, 1); // 2: u32 = int
        record(&mut t, 0, UNION, 1, 8); // 3: union { u32 b; }
        words(&mut t, &[9, 2, 0]);
        record(&mut t, 5, STRUCT, 2, 16); // 4: struct s { int a; union {b}; }
        words(&mut t, &[7, 1, 0, 0, 3, 64]);
        record(&mut t, 11, FUNC, 0, 0); // 5: f
        let bytes = blob(&t, strings);
        let btf = Btf::parse(&bytes).unwrap();
        assert_eq!(btf.field("s", "a"), Ok(Field { offset: 0, size: 4 }));
        assert_eq!(btf.field("s", "b"), Ok(Field { offset: 8, size: 4 }));
        assert_eq!(btf.function("f"), Ok(5));
        assert!(btf.field("s", "zz").is_err());
        assert!(btf.function("g").is_err());
    }

    /// A struct named "s" (id 1) whose members are `members` (name, type, bit offset).
    fn struct_s(members: &[[u32; 3]]) -> Vec<u8> {
        let mut t = Vec::new();
        record(&mut t, 1, STRUCT, members.len() as u32, 8);
        words(&mut t, members.as_flattened());
        t
    }

    /// Regression: a struct whose anonymous member is itself recursed until
    /// the stack overflowed, aborting the process.
    #[test]
    fn a_struct_that_holds_itself_is_an_error_not_an_overflow() {
        let bytes = blob(&struct_s(&[[0, 1, 0]]), b"\0s\0");
        let btf = Btf::parse(&bytes).unwrap();
        assert_eq!(btf.field("s", "x"), Err(BtfError::Missing("s.x".into())));
    }

    /// Anonymous structs nested deeper than `MAX_DEPTH`, typedefs chained
    /// further, or looping: errors, not a walk without end.
    #[test]
    fn walks_are_bounded() {
        // 1: struct s { anonymous 2 }, 2..: struct { anonymous next }, last: int x.
        let strings = b"\0s\0x\0t\0";
        let nested = |levels: u32| {
            let mut t = struct_s(&[[0, 2, 0]]);
            for id in 2..levels + 1 {
                record(&mut t, 0, STRUCT, 1, 8);
                words(&mut t, &[0, id + 1, 0]);
            }
            record(&mut t, 0, STRUCT, 1, 8);
            words(&mut t, &[3, levels + 2, 0]);
            record(&mut t, 0, INT, 0, 4);
            words(&mut t, &[32]);
            blob(&t, strings)
        };
        let shallow = nested(MAX_DEPTH as u32 - 2);
        let field = Btf::parse(&shallow).unwrap().field("s", "x");
        assert_eq!(field, Ok(Field { offset: 0, size: 4 }));
        let deep = nested(MAX_DEPTH as u32 + 8);
        let field = Btf::parse(&deep).unwrap().field("s", "x");
        assert!(matches!(field, Err(BtfError::TooDeep(_))), "{field:?}");
        // 1: struct s { t x }, 2: typedef t = 3, 3: typedef t = 2.
        let mut t = struct_s(&[[3, 2, 0]]);
        record(&mut t, 5, TYPEDEF, 0, 3);
        record(&mut t, 5, TYPEDEF, 0, 2);
        let field = Btf::parse(&blob(&t, strings)).unwrap().field("s", "x");
        assert!(matches!(field, Err(BtfError::TooDeep(_))), "{field:?}");
    }

    /// Each level of anonymous structs naming the next one twice: 2^32 paths
    /// to search, each type searched once.
    #[test]
    fn a_type_met_many_times_is_searched_once() {
        let mut t = struct_s(&[[0, 2, 0], [0, 2, 0]]);
        for id in 2..MAX_DEPTH as u32 {
            record(&mut t, 0, STRUCT, 2, 8);
            words(&mut t, &[0, id + 1, 0, 0, id + 1, 0]);
        }
        let bytes = blob(&t, b"\0s\0");
        let start = std::time::Instant::now();
        assert!(Btf::parse(&bytes).unwrap().field("s", "x").is_err());
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn an_offset_past_16_bits_is_an_error() {
        let mut t = struct_s(&[[3, 2, 8 << 16]]);
        record(&mut t, 0, INT, 0, 4);
        words(&mut t, &[32]);
        let bytes = blob(&t, b"\0s\0x\0");
        let field = Btf::parse(&bytes).unwrap().field("s", "x");
        assert_eq!(field, Err(BtfError::Offset("s.x".into())));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(Btf::parse(b"").err(), Some(BtfError::Header));
        let mut t = Vec::new();
        record(&mut t, 0, 31, 0, 0);
        assert!(Btf::parse(&blob(&t, b"\0")).is_err());
        let mut t = Vec::new();
        record(&mut t, 0, STRUCT, 500, 0);
        assert!(Btf::parse(&blob(&t, b"\0")).is_err());
    }
}
