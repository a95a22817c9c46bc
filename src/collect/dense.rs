//! A set of numbers drawn from a kernel counter: socket inodes (for the
//! join of a million sockets with their owners' fd tables) and socket
//! cookies (to drop a socket a dump reported twice).
//!
//! Socket inodes come from one counter the kernel increments for every new
//! socket, pipe and anonymous inode, and cookies from one it increments for
//! every socket given one, so the sockets alive at one moment sit in a range
//! not much wider than their count. A bitmap over that range is a bit a
//! number instead of the 9 to 18 bytes an entry of a hash set takes, and a
//! lookup is one memory access. When the range is too wide for that (the
//! counter wrapped, or the sockets are few and long-lived among much
//! churn), a hash set it is.

use rustc_hash::FxHashSet;

/// Bits a member may cost at most before the bitmap gives way to a hash set.
const MAX_BITS_PER_MEMBER: u64 = 64;

pub enum DenseSet {
    Bitmap { base: u64, words: Vec<u64> },
    Hashed(FxHashSet<u64>),
}

impl DenseSet {
    /// The set of `numbers` (duplicates allowed), read twice: once for the range.
    pub fn new<I: Iterator<Item = u64> + Clone>(numbers: I) -> DenseSet {
        let mut set = DenseSet::empty_for(numbers.clone());
        for n in numbers {
            set.insert(n);
        }
        set
    }

    /// An empty set with room for `numbers`, which are read for their range only.
    pub fn empty_for(numbers: impl Iterator<Item = u64>) -> DenseSet {
        let (mut lo, mut hi, mut n) = (u64::MAX, 0, 0u64);
        for i in numbers {
            lo = lo.min(i);
            hi = hi.max(i);
            n += 1;
        }
        if n == 0 || (hi - lo) / n > MAX_BITS_PER_MEMBER {
            return DenseSet::Hashed(FxHashSet::with_capacity_and_hasher(
                n as usize,
                Default::default(),
            ));
        }
        let words = vec![0u64; ((hi - lo) / 64 + 1) as usize];
        DenseSet::Bitmap { base: lo, words }
    }

    /// Adds `n`; whether it was new. A number outside the range the set was
    /// made for is never added to a bitmap (and said to be new).
    pub fn insert(&mut self, n: u64) -> bool {
        match self {
            DenseSet::Bitmap { base, words } => {
                let Some((word, mask)) = bit(*base, n).filter(|&(w, _)| w < words.len()) else {
                    return true;
                };
                let new = words[word] & mask == 0;
                words[word] |= mask;
                new
            }
            DenseSet::Hashed(set) => set.insert(n),
        }
    }

    pub fn contains(&self, n: u64) -> bool {
        match self {
            DenseSet::Bitmap { base, words } => bit(*base, n)
                .is_some_and(|(word, mask)| words.get(word).is_some_and(|w| w & mask != 0)),
            DenseSet::Hashed(set) => set.contains(&n),
        }
    }
}

/// The word and the bit of `n` in a bitmap starting at `base`.
fn bit(base: u64, n: u64) -> Option<(usize, u64)> {
    let at = n.checked_sub(base)?;
    Some((usize::try_from(at / 64).ok()?, 1 << (at % 64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(members: &[u64], others: &[u64]) -> DenseSet {
        let set = DenseSet::new(members.iter().copied());
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
        assert!(matches!(set, DenseSet::Bitmap { .. }));
    }

    #[test]
    fn sparse_inodes_are_hashed() {
        let set = check(&[5, u64::from(u32::MAX)], &[6, 0, u64::MAX]);
        assert!(matches!(set, DenseSet::Hashed(_)));
    }

    #[test]
    fn empty_holds_nothing() {
        check(&[], &[0, 1]);
    }

    #[test]
    fn insert_says_whether_a_number_is_new() {
        for numbers in [&[7u64, 9, 7, 8, 9][..], &[1, u64::MAX, 1, u64::MAX]] {
            let mut set = DenseSet::empty_for(numbers.iter().copied());
            let new: Vec<bool> = numbers.iter().map(|&n| set.insert(n)).collect();
            let firsts: Vec<bool> = (0..numbers.len())
                .map(|i| !numbers[..i].contains(&numbers[i]))
                .collect();
            assert_eq!(new, firsts, "{numbers:?}");
        }
    }
}
