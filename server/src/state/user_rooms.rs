//! The other direction of membership: the rooms of each user, for
//! `getuserrooms` and the limit on rooms per user.
//!
//! Most users are in one room, so a user costs one map entry holding the
//! rid inline; a user in several rooms holds a sorted boxed slice.

use dashmap::DashMap;

use crate::model::UserKey;

#[derive(Debug)]
enum Rids {
    One(i64),
    Many(Box<[i64]>),
}

impl Rids {
    fn as_slice(&self) -> &[i64] {
        match self {
            Self::One(rid) => std::slice::from_ref(rid),
            Self::Many(rids) => rids,
        }
    }
}

/// Rooms by user.
#[derive(Debug, Default)]
pub(crate) struct UserRooms {
    users: DashMap<UserKey, Rids>,
}

impl UserRooms {
    /// Notes that `user` joined room `rid`.
    pub(crate) fn add(&self, user: UserKey, rid: i64) {
        let mut entry = self.users.entry(user).or_insert(Rids::Many(Box::new([])));
        let rids = entry.as_slice();
        let Err(at) = rids.binary_search(&rid) else { return };
        *entry = match rids.len() {
            0 => Rids::One(rid),
            _ => {
                let mut grown = Vec::with_capacity(rids.len() + 1);
                grown.extend_from_slice(&rids[..at]);
                grown.push(rid);
                grown.extend_from_slice(&rids[at..]);
                Rids::Many(grown.into_boxed_slice())
            }
        };
    }

    /// Notes that `user` left room `rid`.
    pub(crate) fn remove(&self, user: UserKey, rid: i64) {
        let dashmap::mapref::entry::Entry::Occupied(mut entry) = self.users.entry(user) else { return };
        let rids = entry.get().as_slice();
        let Ok(at) = rids.binary_search(&rid) else { return };
        match rids.len() {
            1 => {
                entry.remove();
            }
            2 => {
                let other = rids[1 - at];
                entry.insert(Rids::One(other));
            }
            _ => {
                let shrunk: Vec<i64> = rids.iter().copied().filter(|&r| r != rid).collect();
                entry.insert(Rids::Many(shrunk.into_boxed_slice()));
            }
        }
    }

    /// The user's rooms, ascending.
    pub(crate) fn rooms(&self, user: UserKey) -> Vec<i64> {
        self.users.get(&user).map(|rids| rids.as_slice().to_vec()).unwrap_or_default()
    }

    /// How many rooms the user is in.
    pub(crate) fn count(&self, user: UserKey) -> usize {
        self.users.get(&user).map_or(0, |rids| rids.as_slice().len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_stay_sorted_and_unique() {
        let index = UserRooms::default();
        let user = UserKey { pid: 1, uid: 9 };
        for rid in [5, 3, 5, 8] {
            index.add(user, rid);
        }
        assert_eq!(index.rooms(user), vec![3, 5, 8]);
        index.remove(user, 5);
        index.remove(user, 42);
        assert_eq!(index.rooms(user), vec![3, 8]);
        index.remove(user, 3);
        assert_eq!(index.count(user), 1);
        index.remove(user, 8);
        assert!(index.users.is_empty(), "a user in no room costs nothing");
        assert_eq!(index.count(UserKey { pid: 2, uid: 9 }), 0);
    }
}
