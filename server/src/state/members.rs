//! A compact set of member uids.
//!
//! Most rooms are small and most uids are small integers, so a room holds a
//! sorted array of the narrowest integer width that fits every member (like
//! Redis's intset): 2, 4 or 8 bytes a member, with no spare capacity (the
//! array is reallocated to its exact size on every change, as an intset is;
//! batches are merged in one pass). Past [`LARGE_ROOM`] members the set
//! becomes a B-tree, so changing a huge room stays logarithmic. No room pays
//! for a hash table, and the whole set is 24 bytes plus its members.

use std::collections::BTreeSet;

/// Members above which a room switches from a sorted array to a B-tree.
pub(crate) const LARGE_ROOM: usize = 4096;

/// A set of uids. Iteration is in ascending order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MemberSet {
    W16(Box<[i16]>),
    W32(Box<[i32]>),
    W64(Box<[i64]>),
    /// Boxed so that the set stays 24 bytes: only huge rooms pay for it.
    #[allow(clippy::box_collection)]
    Large(Box<BTreeSet<i64>>),
}

impl Default for MemberSet {
    fn default() -> Self {
        Self::W16(Box::default())
    }
}

/// An integer width members can be stored at.
trait Width: Ord + Copy + TryFrom<i64> + Into<i64> {}
impl<T: Ord + Copy + TryFrom<i64> + Into<i64>> Width for T {}

fn array_contains<T: Width>(array: &[T], uid: i64) -> bool {
    T::try_from(uid).is_ok_and(|u| array.binary_search(&u).is_ok())
}

/// Inserts `uid` (which must fit `T`) into a sorted array.
fn array_insert<T: Width>(array: &mut Box<[T]>, uid: T) -> bool {
    let Err(at) = array.binary_search(&uid) else {
        return false;
    };
    let mut grown = Vec::with_capacity(array.len() + 1);
    grown.extend_from_slice(&array[..at]);
    grown.push(uid);
    grown.extend_from_slice(&array[at..]);
    *array = grown.into_boxed_slice();
    true
}

fn array_remove<T: Width>(array: &mut Box<[T]>, uid: i64) -> bool {
    let Some(at) = T::try_from(uid).ok().and_then(|u| array.binary_search(&u).ok()) else {
        return false;
    };
    let mut shrunk = Vec::with_capacity(array.len() - 1);
    shrunk.extend_from_slice(&array[..at]);
    shrunk.extend_from_slice(&array[at + 1..]);
    *array = shrunk.into_boxed_slice();
    true
}

/// Merges `uids` (each fits `T`) into a sorted array in one pass; returns
/// how many were new.
fn array_merge<T: Width>(array: &mut Box<[T]>, uids: &[i64]) -> usize {
    let mut new: Vec<T> =
        uids.iter().filter_map(|&u| T::try_from(u).ok()).filter(|u| array.binary_search(u).is_err()).collect();
    new.sort_unstable();
    new.dedup();
    if new.is_empty() {
        return 0;
    }
    let mut merged = Vec::with_capacity(array.len() + new.len());
    let (mut old, mut add) = (array.iter().peekable(), new.iter().peekable());
    while let (Some(&&a), Some(&&b)) = (old.peek(), add.peek()) {
        if a < b {
            merged.push(a);
            old.next();
        } else {
            merged.push(b);
            add.next();
        }
    }
    merged.extend(old);
    merged.extend(add);
    *array = merged.into_boxed_slice();
    new.len()
}

fn widened<T: Width, U: Width>(array: &[T]) -> Box<[U]> {
    // Only called to widen, so every member fits.
    array.iter().filter_map(|&u| U::try_from(u.into()).ok()).collect()
}

impl MemberSet {
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::W16(a) => a.len(),
            Self::W32(a) => a.len(),
            Self::W64(a) => a.len(),
            Self::Large(s) => s.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn contains(&self, uid: i64) -> bool {
        match self {
            Self::W16(a) => array_contains(a, uid),
            Self::W32(a) => array_contains(a, uid),
            Self::W64(a) => array_contains(a, uid),
            Self::Large(s) => s.contains(&uid),
        }
    }

    /// Adds `uid`; returns whether it was new.
    pub(crate) fn insert(&mut self, uid: i64) -> bool {
        self.make_room_for(uid);
        let added = match self {
            Self::W16(a) => i16::try_from(uid).is_ok_and(|u| array_insert(a, u)),
            Self::W32(a) => i32::try_from(uid).is_ok_and(|u| array_insert(a, u)),
            Self::W64(a) => array_insert(a, uid),
            Self::Large(s) => s.insert(uid),
        };
        self.grow_into_tree();
        added
    }

    /// Adds every uid in `uids`; returns how many were new.
    pub(crate) fn insert_all(&mut self, uids: &[i64]) -> usize {
        if let [uid] = uids {
            return usize::from(self.insert(*uid));
        }
        for extreme in [uids.iter().min(), uids.iter().max()].into_iter().flatten() {
            self.make_room_for(*extreme);
        }
        let added = match self {
            Self::W16(a) => array_merge(a, uids),
            Self::W32(a) => array_merge(a, uids),
            Self::W64(a) => array_merge(a, uids),
            Self::Large(s) => uids.iter().filter(|&&u| s.insert(u)).count(),
        };
        self.grow_into_tree();
        added
    }

    /// Removes `uid`; returns whether it was present.
    pub(crate) fn remove(&mut self, uid: i64) -> bool {
        match self {
            Self::W16(a) => array_remove(a, uid),
            Self::W32(a) => array_remove(a, uid),
            Self::W64(a) => array_remove(a, uid),
            Self::Large(s) => s.remove(&uid),
        }
    }

    /// Re-encodes at a wider width if `uid` does not fit the current one.
    fn make_room_for(&mut self, uid: i64) {
        let fits_i32 = i32::try_from(uid).is_ok();
        let replacement = match self {
            Self::W16(a) if i16::try_from(uid).is_err() => {
                if fits_i32 {
                    Self::W32(widened(a))
                } else {
                    Self::W64(widened(a))
                }
            }
            Self::W32(a) if !fits_i32 => Self::W64(widened(a)),
            _ => return,
        };
        *self = replacement;
    }

    fn grow_into_tree(&mut self) {
        if !matches!(self, Self::Large(_)) && self.len() > LARGE_ROOM {
            *self = Self::Large(Box::new(self.iter().collect()));
        }
    }

    /// Members in ascending order.
    pub(crate) fn iter(&self) -> Box<dyn Iterator<Item = i64> + '_> {
        match self {
            Self::W16(a) => Box::new(a.iter().map(|&u| i64::from(u))),
            Self::W32(a) => Box::new(a.iter().map(|&u| i64::from(u))),
            Self::W64(a) => Box::new(a.iter().copied()),
            Self::Large(s) => Box::new(s.iter().copied()),
        }
    }

    /// Heap bytes held by the arrays.
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            Self::W16(a) => a.len() * 2,
            Self::W32(a) => a.len() * 4,
            Self::W64(a) => a.len() * 8,
            Self::Large(s) => s.len() * 8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_set_itself_is_small() {
        assert_eq!(size_of::<MemberSet>(), 24);
    }

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
        assert_eq!(set.insert_all(&[1, 2, 3]), 2, "3 was already there");
    }

    #[test]
    fn batches_merge_in_order_and_skip_duplicates() {
        let mut set = MemberSet::default();
        assert_eq!(set.insert_all(&[10, 30, 20, 30]), 3);
        assert_eq!(set.insert_all(&[25, 10, 5, 70_000, 5]), 3);
        assert!(matches!(set, MemberSet::W32(_)), "widened once for the batch");
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![5, 10, 20, 25, 30, 70_000]);
        assert_eq!(set.insert_all(&[]), 0);
        let big: Vec<i64> = (0..5000).collect();
        assert_eq!(set.insert_all(&big), 4995);
        assert!(matches!(set, MemberSet::Large(_)));
        assert_eq!(set.len(), 5001);
    }

    #[test]
    fn arrays_hold_no_spare_capacity() {
        let mut set = MemberSet::default();
        let uids: Vec<i64> = (0..100).map(|k| 70_000 + k).collect();
        assert_eq!(set.insert_all(&uids), 100);
        assert_eq!(set.heap_bytes(), 100 * 4);
        set.insert(1);
        set.remove(70_000);
        assert_eq!(set.heap_bytes(), 100 * 4);
    }
}
