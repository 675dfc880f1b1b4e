//! Adding and removing room members, one at a time or in batches.

use serde::{Deserialize, Serialize};

use super::{Empty, Method};

/// `addroommember {rid, uid}` → `{}`: makes `uid` a member of room `rid`,
/// creating the room if needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddRoomMember {
    /// Room id.
    pub rid: i64,
    /// User id.
    pub uid: i64,
}

impl Method for AddRoomMember {
    const NAME: &'static str = "addroommember";
    type Answer = Empty;
}

/// `delroommember {rid, uid}` → `{}`: removes `uid` from room `rid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelRoomMember {
    /// Room id.
    pub rid: i64,
    /// User id.
    pub uid: i64,
}

impl Method for DelRoomMember {
    const NAME: &'static str = "delroommember";
    type Answer = Empty;
}

/// The answer of the batch member calls: the uids the call succeeded for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuccessedUids {
    /// The uids the change was applied to (the wire spelling is the RTM one).
    #[serde(rename = "successedUids")]
    pub successed_uids: Vec<i64>,
}

/// `addroommembers {rid, uids}` → `{successedUids}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddRoomMembers {
    /// Room id.
    pub rid: i64,
    /// User ids to add.
    pub uids: Vec<i64>,
}

impl Method for AddRoomMembers {
    const NAME: &'static str = "addroommembers";
    type Answer = SuccessedUids;
}

/// `delroommembers {rid, uids}` → `{successedUids}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelRoomMembers {
    /// Room id.
    pub rid: i64,
    /// User ids to remove.
    pub uids: Vec<i64>,
}

impl Method for DelRoomMembers {
    const NAME: &'static str = "delroommembers";
    type Answer = SuccessedUids;
}

/// `adduserrooms {rids, uid}` → `{}`: adds one user to several rooms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddUserRooms {
    /// Room ids.
    pub rids: Vec<i64>,
    /// User id.
    pub uid: i64,
}

impl Method for AddUserRooms {
    const NAME: &'static str = "adduserrooms";
    type Answer = Empty;
}

/// `deleteuserrooms {rids, uid}` → `{}`: removes one user from several rooms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteUserRooms {
    /// Room ids.
    pub rids: Vec<i64>,
    /// User id.
    pub uid: i64,
}

impl Method for DeleteUserRooms {
    const NAME: &'static str = "deleteuserrooms";
    type Answer = Empty;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{payload, Encoding};

    #[test]
    fn successed_uids_uses_the_rtm_spelling() {
        let answer = SuccessedUids { successed_uids: vec![1, 2] };
        let json = payload::encode(Encoding::Json, &answer).unwrap();
        assert_eq!(&json[..], br#"{"successedUids":[1,2]}"#);
    }
}
