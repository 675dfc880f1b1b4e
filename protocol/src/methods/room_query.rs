//! Member lists and member counts.

use std::collections::HashMap;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Method;

/// `getroommembers {rid}` → `{uids}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetRoomMembers {
    /// Room id.
    pub rid: i64,
}

impl Method for GetRoomMembers {
    const NAME: &'static str = "getroommembers";
    type Answer = RoomMembers;
}

/// The members of a room.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomMembers {
    /// Member uids, in ascending order.
    pub uids: Vec<i64>,
}

/// `getroomcount {rids}` → `{cn: {"<rid>": count}}`.
///
/// The C++ RTM SDK sends a single `rid` instead of `rids`; the server
/// accepts either.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetRoomCount {
    /// Room ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rids: Option<Vec<i64>>,
    /// A single room id (the C++ SDK's form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rid: Option<i64>,
}

impl GetRoomCount {
    /// The usual form, with a list of room ids.
    pub fn new(rids: Vec<i64>) -> Self {
        Self { rids: Some(rids), rid: None }
    }
}

impl Method for GetRoomCount {
    const NAME: &'static str = "getroomcount";
    type Answer = RoomCounts;
}

/// The answer of `getroomcount`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomCounts {
    /// Member count by room id. On the wire the keys are the decimal rids as
    /// strings: the Go SDK drops integer keys.
    #[serde(serialize_with = "ser_counts", deserialize_with = "de_counts")]
    pub cn: Vec<(i64, i32)>,
}

impl RoomCounts {
    /// The counts as a map.
    pub fn to_map(&self) -> HashMap<i64, i32> {
        self.cn.iter().copied().collect()
    }
}

fn ser_counts<S: Serializer>(counts: &[(i64, i32)], ser: S) -> Result<S::Ok, S::Error> {
    let mut map = ser.serialize_map(Some(counts.len()))?;
    let mut key = String::with_capacity(20);
    for (rid, count) in counts {
        use std::fmt::Write;
        key.clear();
        let _ = write!(key, "{rid}");
        map.serialize_entry(key.as_str(), count)?;
    }
    map.end()
}

fn de_counts<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<(i64, i32)>, D::Error> {
    struct CountsVisitor;
    impl<'de> Visitor<'de> for CountsVisitor {
        type Value = Vec<(i64, i32)>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map of room id to member count")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
            while let Some((rid, count)) = map.next_entry::<RidKey, i32>()? {
                out.push((rid.0, count));
            }
            Ok(out)
        }
    }
    de.deserialize_map(CountsVisitor)
}

/// A room id written as a decimal string or as an integer.
struct RidKey(i64);

impl<'de> Deserialize<'de> for RidKey {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = RidKey;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a room id")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RidKey, E> {
                Ok(RidKey(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RidKey, E> {
                i64::try_from(v).map(RidKey).map_err(E::custom)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RidKey, E> {
                v.parse().map(RidKey).map_err(E::custom)
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<RidKey, E> {
                let text = std::str::from_utf8(v).map_err(E::custom)?;
                self.visit_str(text)
            }
        }
        de.deserialize_any(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{payload, Encoding};

    #[test]
    fn counts_have_string_keys() {
        let answer = RoomCounts { cn: vec![(7001, 2)] };
        let bytes = payload::encode(Encoding::MsgPack, &answer).unwrap();
        assert_eq!(&bytes[..], &[0x81, 0xa2, b'c', b'n', 0x81, 0xa4, b'7', b'0', b'0', b'1', 0x02]);
        assert_eq!(payload::decode::<RoomCounts>(Encoding::MsgPack, &bytes).unwrap(), answer);
    }

    #[test]
    fn counts_with_integer_keys_are_read_too() {
        // {"cn": {7001: 2}}
        let bytes = [0x81, 0xa2, b'c', b'n', 0x81, 0xcd, 0x1b, 0x59, 0x02];
        let answer: RoomCounts = payload::decode(Encoding::MsgPack, &bytes).unwrap();
        assert_eq!(answer.to_map()[&7001], 2);
    }
}
