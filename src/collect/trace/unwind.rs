//! The caller a frame-pointer walk skips, put back. At a system call the
//! walk starts at the wrapper's instruction pointer and follows the frame
//! pointer, which a frameless wrapper (glibc's `accept`, `connect`) never
//! set: the first frame it finds is its caller's caller. The wrapper's
//! return address is on the stack, among the words the birth program kept
//! at the stack pointer; which word is what the wrapper's unwind table
//! (`.eh_frame`) says its frame is at that instruction: glibc 2.36's
//! `accept` has none in a single-threaded process (the first word) and
//! 0x28 bytes in a multi-threaded one, where it calls into the thread
//! cancellation (the sixth). Without an unwind table (Go's binaries have
//! none; its system call stubs keep no frame), the first word.

use gimli::{BaseAddresses, CfaRule, EhFrame, LittleEndian, UnwindContext, UnwindSection, X86_64};
use std::path::{Path, PathBuf};

/// An executable mapping of a process: where, and from which file and offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub offset: u64,
    /// The file, as the process's own mount namespace names it; `None`: anonymous (JIT).
    pub path: Option<PathBuf>,
}

/// The executable mappings of process `pid` under `proc_root`; empty when it is gone.
pub fn mappings(proc_root: &Path, pid: u32) -> Vec<Mapping> {
    std::fs::read_to_string(proc_root.join(pid.to_string()).join("maps"))
        .map(|maps| parse_mappings(&maps))
        .unwrap_or_default()
}

/// The executable mappings of a `maps` file (anonymous ones too: JIT code).
fn parse_mappings(maps: &str) -> Vec<Mapping> {
    maps.lines()
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            let (start, end) = fields.next()?.split_once('-')?;
            fields.next()?.contains('x').then_some(())?;
            let offset = u64::from_str_radix(fields.next()?, 16).ok()?;
            let path = fields.nth(2).filter(|p| p.starts_with('/'));
            Some(Mapping {
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
                offset,
                path: path.map(PathBuf::from),
            })
        })
        .collect()
}

/// The stack `ips` (innermost first) with the wrapper's caller put back:
/// the word at `slot` from the stack pointer goes after the innermost
/// frame when it points into code the walk does not already have.
pub fn splice(ips: &[u64], words: &[u64], slot: usize, code: &[Mapping]) -> Vec<u64> {
    let mut out = ips.to_vec();
    let is_code = |w: u64| code.iter().any(|m| (m.start..m.end).contains(&w));
    if let Some(&ret) = words.get(slot)
        && is_code(ret)
        && !out.is_empty()
        && !out.contains(&ret)
    {
        out.insert(1, ret);
    }
    out
}

/// Which word from the stack pointer holds the return address at `ip`,
/// from the unwind table of the file mapped there (read under `root`, the
/// process's root); 0 when there is none.
pub fn return_slot(root: &Path, code: &[Mapping], ip: u64) -> usize {
    slot_in_file(root, code, ip).unwrap_or(0)
}

fn slot_in_file(root: &Path, code: &[Mapping], ip: u64) -> Option<usize> {
    let m = code.iter().find(|m| (m.start..m.end).contains(&ip))?;
    let path = m.path.as_ref()?.strip_prefix("/").ok()?;
    let elf = std::fs::read(root.join(path)).ok()?;
    let vaddr = file_vaddr(&elf, ip - m.start + m.offset)?;
    let (eh_addr, eh) = section(&elf, b".eh_frame")?;
    let frame = EhFrame::new(eh, LittleEndian);
    let bases = BaseAddresses::default().set_eh_frame(eh_addr);
    let mut ctx = UnwindContext::new();
    let row = frame
        .unwind_info_for_address(&bases, &mut ctx, vaddr, EhFrame::cie_from_offset)
        .ok()?;
    match row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } if *register == X86_64::RSP => {
            // The return address is the word just below the CFA.
            usize::try_from((offset - 8) / 8).ok()
        }
        _ => None,
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from(u16::from_le_bytes(
        b.get(at..at + 2)?.try_into().ok()?,
    )))
}

fn u32_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from(u32::from_le_bytes(
        b.get(at..at + 4)?.try_into().ok()?,
    )))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The entries of an ELF64 little-endian table at header offsets
/// (`e_phoff` or `e_shoff`, its entry size, its count).
fn table(elf: &[u8], (off, size, count): (usize, usize, usize)) -> Option<Vec<&[u8]>> {
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let start = usize::try_from(u64_at(elf, off)?).ok()?;
    let size = usize::try_from(u16_at(elf, size)?).ok()?;
    let count = usize::try_from(u16_at(elf, count)?).ok()?;
    (0..count)
        .map(|i| elf.get(start + i * size..start + (i + 1) * size))
        .collect()
}

/// The virtual address of file offset `at`, by the loadable segment that holds it.
fn file_vaddr(elf: &[u8], at: u64) -> Option<u64> {
    const PT_LOAD: u64 = 1;
    table(elf, (0x20, 0x36, 0x38))?.into_iter().find_map(|ph| {
        let (offset, vaddr, size) = (u64_at(ph, 8)?, u64_at(ph, 16)?, u64_at(ph, 32)?);
        (u32_at(ph, 0)? == PT_LOAD && (offset..offset + size).contains(&at))
            .then(|| at - offset + vaddr)
    })
}

/// A section by name: its address, and its bytes.
fn section<'a>(elf: &'a [u8], name: &[u8]) -> Option<(u64, &'a [u8])> {
    let sections = table(elf, (0x28, 0x3a, 0x3c))?;
    let names = sections.get(usize::try_from(u16_at(elf, 0x3e)?).ok()?)?;
    let names_at = usize::try_from(u64_at(names, 24)?).ok()?;
    sections.into_iter().find_map(|sh| {
        let at = names_at + usize::try_from(u32_at(sh, 0)?).ok()?;
        let this = elf.get(at..at + name.len() + 1)?;
        if &this[..name.len()] != name || this[name.len()] != 0 {
            return None;
        }
        let offset = usize::try_from(u64_at(sh, 24)?).ok()?;
        let size = usize::try_from(u64_at(sh, 32)?).ok()?;
        Some((u64_at(sh, 16)?, elf.get(offset..offset + size)?))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c0a00000-55d0c0a01000 r--p 00000000 08:01 1234 /srv/server
55d0c0a01000-55d0c0a02000 r-xp 00001000 08:01 1234 /srv/server
7f0000000000-7f0000100000 r-xp 00028000 08:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
7f1000000000-7f1000001000 rwxp 00000000 00:00 0
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
";

    #[test]
    fn only_executable_mappings_are_code_and_anonymous_ones_have_no_file() {
        let m = parse_mappings(MAPS);
        assert_eq!(m.len(), 3);
        assert_eq!((m[0].start, m[0].offset), (0x55d0c0a01000, 0x1000));
        assert_eq!(
            m[1].path.as_deref(),
            Some(Path::new("/usr/lib/x86_64-linux-gnu/libc.so.6"))
        );
        assert_eq!(m[2].path, None);
    }

    #[test]
    fn the_callers_return_address_goes_back_after_the_wrapper() {
        let code = parse_mappings(MAPS);
        // __libc_accept, serve_forever, main: accept_client is missing.
        let stack = [0x7f0000000100, 0x55d0c0a01200, 0x55d0c0a01300];
        // At the stack pointer: two stale words, then accept_client's return address.
        let words = [0x7f0000000400, 5, 0x55d0c0a01100, 0, 0, 0, 0, 0];
        assert_eq!(
            splice(&stack, &words, 2, &code),
            [
                0x7f0000000100,
                0x55d0c0a01100,
                0x55d0c0a01200,
                0x55d0c0a01300
            ]
        );
        // A wrapper with a frame: its caller is already there, nothing is added.
        let walked = [0x7f0000000100, 0x55d0c0a01100, 0x55d0c0a01200];
        assert_eq!(splice(&walked, &words, 2, &code), walked);
        // Not code at that slot: the stack as walked.
        assert_eq!(splice(&stack, &words, 1, &code), stack);
    }

    /// This test binary's own unwind table: the slot at the entry of a
    /// function (its return address at the stack pointer) is the first word.
    #[test]
    fn a_functions_entry_has_its_return_address_at_the_stack_pointer() {
        let me = std::fs::read("/proc/self/exe").unwrap();
        let code = mappings(Path::new("/proc"), std::process::id());
        let entry = parse_mappings as fn(&str) -> Vec<Mapping> as usize as u64;
        let m = code
            .iter()
            .find(|m| (m.start..m.end).contains(&entry))
            .unwrap();
        let vaddr = file_vaddr(&me, entry - m.start + m.offset).unwrap();
        assert!(section(&me, b".eh_frame").is_some());
        assert!(vaddr > 0);
        assert_eq!(return_slot(Path::new("/"), &code, entry), 0);
    }
}
