//! A compact set of member uids.
//!
//! Most rooms are small and most uids are small integers, so a room holds a
//! sorted array of the narrowest integer width that fits every member (like
//! Redis's intset): 2, 4 or 8 bytes a member, plus a little spare capacity.
//! Past [`LARGE_ROOM`] members the set becomes a B-tree, so inserting into a
//! huge room stays logarithmic. No room pays for a hash table.

use std::collections::BTreeSet;

/// Members above which a room switches from a sorted array to a B-tree.
pub(crate) const LARGE_ROOM: usize = 4096;

/// A set of uids. Iteration is in ascending order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MemberSet {
    W16(Vec<i16>),
    W32(Vec<i32>),
    W64(Vec<i64>),
    Large(BTreeSet<i64>),
}

impl Default for MemberSet {
    fn default() -> Self {
        Self::W16(Vec::new())
    }
}

/// Inserts into a sorted vector, growing it by about 1/8 at a time rather
/// than doubling, to keep spare capacity small.
fn sorted_insert<T: Ord + Copy>(v: &mut Vec<T>, x: T) -> bool {
    match v.binary_search(&x) {
        Ok(_) => false,
        Err(at) => {
            if v.len() == v.capacity() {
                v.reserve_exact((v.len() / 8).max(4));
            }
            v.insert(at, x);
            true
        }
    }
}

fn sorted_remove<T: Ord + Copy>(v: &mut Vec<T>, x: T) -> bool {
    match v.binary_search(&x) {
        Ok(at) => {
            v.remove(at);
            // Give memory back once a room has shrunk a lot.
            if v.capacity() > 16 && v.len() < v.capacity() / 4 {
                v.shrink_to(v.len() + v.len() / 8 + 4);
            }
            true
        }
        Err(_) => false,
    }
}

impl MemberSet {
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::W16(v) => v.len(),
            Self::W32(v) => v.len(),
            Self::W64(v) => v.len(),
            Self::Large(s) => s.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn contains(&self, uid: i64) -> bool {
        match self {
            Self::W16(v) => i16::try_from(uid).is_ok_and(|u| v.binary_search(&u).is_ok()),
            Self::W32(v) => i32::try_from(uid).is_ok_and(|u| v.binary_search(&u).is_ok()),
            Self::W64(v) => v.binary_search(&uid).is_ok(),
            Self::Large(s) => s.contains(&uid),
        }
    }

    /// Adds every uid in `uids`; returns how many were new. The array grows
    /// once, by exactly the number of new members.
    pub(crate) fn insert_all(&mut self, uids: &[i64]) -> usize {
        if uids.len() > 1 {
            // Widen once for the whole batch, then grow once.
            for extreme in [uids.iter().min(), uids.iter().max()].into_iter().flatten() {
                if !self.fits(*extreme) {
                    self.widen(*extreme);
                }
            }
            let new = uids.iter().filter(|&&uid| !self.contains(uid)).count();
            match self {
                Self::W16(v) => v.reserve_exact(new),
                Self::W32(v) => v.reserve_exact(new),
                Self::W64(v) => v.reserve_exact(new),
                Self::Large(_) => {}
            }
        }
        uids.iter().filter(|&&uid| self.insert(uid)).count()
    }

    /// Adds `uid`; returns whether it was new.
    pub(crate) fn insert(&mut self, uid: i64) -> bool {
        let added = match self {
            Self::W16(v) => match i16::try_from(uid) {
                Ok(u) => sorted_insert(v, u),
                Err(_) => {
                    self.widen(uid);
                    return self.insert(uid);
                }
            },
            Self::W32(v) => match i32::try_from(uid) {
                Ok(u) => sorted_insert(v, u),
                Err(_) => {
                    self.widen(uid);
                    return self.insert(uid);
                }
            },
            Self::W64(v) => sorted_insert(v, uid),
            Self::Large(s) => return s.insert(uid),
        };
        if added && self.len() > LARGE_ROOM {
            *self = Self::Large(self.iter().collect());
        }
        added
    }

    /// Removes `uid`; returns whether it was present.
    pub(crate) fn remove(&mut self, uid: i64) -> bool {
        match self {
            Self::W16(v) => i16::try_from(uid).is_ok_and(|u| sorted_remove(v, u)),
            Self::W32(v) => i32::try_from(uid).is_ok_and(|u| sorted_remove(v, u)),
            Self::W64(v) => sorted_remove(v, uid),
            Self::Large(s) => s.remove(&uid),
        }
    }

    /// Whether `uid` can be stored at the current width.
    fn fits(&self, uid: i64) -> bool {
        match self {
            Self::W16(_) => i16::try_from(uid).is_ok(),
            Self::W32(_) => i32::try_from(uid).is_ok(),
            Self::W64(_) | Self::Large(_) => true,
        }
    }

    /// Re-encodes at a width that can hold `uid`.
    fn widen(&mut self, uid: i64) {
        let members: Vec<i64> = self.iter().collect();
        *self = if i32::try_from(uid).is_ok() {
            Self::W32(members.into_iter().map(|u| u as i32).collect())
        } else {
            Self::W64(members)
        };
    }

    /// Members in ascending order.
    pub(crate) fn iter(&self) -> Box<dyn Iterator<Item = i64> + '_> {
        match self {
            Self::W16(v) => Box::new(v.iter().map(|&u| i64::from(u))),
            Self::W32(v) => Box::new(v.iter().map(|&u| i64::from(u))),
            Self::W64(v) => Box::new(v.iter().copied()),
            Self::Large(s) => Box::new(s.iter().copied()),
        }
    }

    /// Heap bytes held.
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            Self::W16(v) => v.capacity() * 2,
            Self::W32(v) => v.capacity() * 4,
            Self::W64(v) => v.capacity() * 8,
            // A B-tree node holds up to 11 keys plus about 100 bytes of overhead.
            Self::Large(s) => s.len() * 8 + s.len().div_ceil(6) * 100,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_narrow_for_small_uids() {
        let mut set = MemberSet::default();
        for uid in [5, 3, 9, 3] {
            set.insert(uid);
        }
        assert!(matches!(set, MemberSet::W16(_)));
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![3, 5, 9]);
        assert!(set.contains(9));
        assert!(!set.contains(4));
        assert!(!set.contains(1 << 40));
    }

    #[test]
    fn widens_when_a_uid_does_not_fit() {
        let mut set = MemberSet::default();
        set.insert(1);
        assert!(set.insert(100_000));
        assert!(matches!(set, MemberSet::W32(_)));
        assert!(set.insert(-(1 << 40)));
        assert!(matches!(set, MemberSet::W64(_)));
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![-(1 << 40), 1, 100_000]);
        assert!(set.remove(1));
        assert!(!set.remove(1));
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn large_rooms_become_a_tree_and_stay_ordered() {
        let mut set = MemberSet::default();
        for uid in (0..=LARGE_ROOM as i64).rev() {
            set.insert(uid * 3);
        }
        assert!(matches!(set, MemberSet::Large(_)));
        assert_eq!(set.len(), LARGE_ROOM + 1);
        let all: Vec<i64> = set.iter().collect();
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        assert!(set.contains(300));
        assert!(set.remove(300));
        assert!(!set.contains(300));
    }

    #[test]
    fn batch_inserts_grow_the_array_exactly() {
        let mut set = MemberSet::default();
        let uids: Vec<i64> = (0..100).map(|k| 70_000 + k).collect();
        assert_eq!(set.insert_all(&uids), 100);
        assert_eq!(set.heap_bytes(), 100 * 4, "W32, no spare capacity");
        assert_eq!(set.insert_all(&uids), 0);
        assert_eq!(set.heap_bytes(), 100 * 4);
    }

    #[test]
    fn spare_capacity_stays_small() {
        let mut set = MemberSet::default();
        for uid in 0..100 {
            set.insert(uid);
        }
        // 100 members at 2 bytes, with at most ~1/8 spare.
        assert!(set.heap_bytes() <= 2 * 116, "{}", set.heap_bytes());
        for uid in 0..95 {
            set.remove(uid);
        }
        assert!(set.heap_bytes() <= 64, "shrunk after removals: {}", set.heap_bytes());
    }
}
