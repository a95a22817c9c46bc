//! A set of socket inode numbers, for the join of a million sockets with
//! their owners' fd tables.
//!
//! Socket inodes come from one counter the kernel increments for every new
//! socket, pipe and anonymous inode, so the sockets alive at one moment sit
//! in a range not much wider than their count. A bitmap over that range is a
//! bit a number instead of the 9 to 18 bytes an entry of a hash set takes,
//! and a lookup is one memory access. When the range is too wide for that
//! (the counter wrapped, or the sockets are few and long-lived among much
//! churn), a hash set it is.

use rustc_hash::FxHashSet;

/// Bits a member may cost at most before the bitmap gives way to a hash set.
const MAX_BITS_PER_MEMBER: u64 = 64;

pub enum InodeSet {
    Bitmap { base: u64, words: Vec<u64> },
    Hashed(FxHashSet<u64>),
}

impl InodeSet {
    /// The set of `inodes` (duplicates allowed), read twice: once for the range.
    pub fn new<I: Iterator<Item = u64> + Clone>(inodes: I) -> InodeSet {
        let (mut lo, mut hi, mut n) = (u64::MAX, 0, 0u64);
        for i in inodes.clone() {
            lo = lo.min(i);
            hi = hi.max(i);
            n += 1;
        }
        if n == 0 {
            return InodeSet::Hashed(FxHashSet::default());
        }
        let span = hi - lo + 1;
        if span / n.max(1) > MAX_BITS_PER_MEMBER {
            let mut set = FxHashSet::with_capacity_and_hasher(n as usize, Default::default());
            set.extend(inodes);
            return InodeSet::Hashed(set);
        }
        let mut words = vec![0u64; span.div_ceil(64) as usize];
        for i in inodes {
            let bit = i - lo;
            words[(bit / 64) as usize] |= 1 << (bit % 64);
        }
        InodeSet::Bitmap { base: lo, words }
    }

    pub fn contains(&self, inode: u64) -> bool {
        match self {
            InodeSet::Bitmap { base, words } => inode.checked_sub(*base).is_some_and(|bit| {
                words
                    .get((bit / 64) as usize)
                    .is_some_and(|w| w & (1 << (bit % 64)) != 0)
            }),
            InodeSet::Hashed(set) => set.contains(&inode),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(members: &[u64], others: &[u64]) -> InodeSet {
        let set = InodeSet::new(members.iter().copied());
        for m in members {
            assert!(set.contains(*m), "{m} is a member");
        }
        for o in others {
            assert!(!set.contains(*o), "{o} is not a member");
        }
        set
    }

    #[test]
    fn dense_inodes_are_a_bitmap() {
        let set = check(
            &[1000, 1001, 1063, 1064, 1200],
            &[0, 999, 1002, 1201, u64::MAX],
        );
        assert!(matches!(set, InodeSet::Bitmap { .. }));
    }

    #[test]
    fn sparse_inodes_are_hashed() {
        let set = check(&[5, u64::from(u32::MAX)], &[6, 0, u64::MAX]);
        assert!(matches!(set, InodeSet::Hashed(_)));
    }

    #[test]
    fn empty_holds_nothing() {
        check(&[], &[0, 1]);
    }
}
