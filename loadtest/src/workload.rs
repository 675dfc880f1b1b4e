//! What to send: the operations, their random parameters, and signing.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use rtm_protocol::methods::*;
use rtm_protocol::{write_quest, Encoding};
use serde::Serialize;

/// One server operation the harness can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// `addroommember` of a random uid to a random room.
    #[value(name = "addroommember")]
    AddRoomMember,
    /// `delroommember` of a random uid from a random room.
    #[value(name = "delroommember")]
    DelRoomMember,
    /// `addroommembers` of 10 random uids to a random room.
    #[value(name = "addroommembers")]
    AddRoomMembers,
    /// `getroomcount` of one random room.
    #[value(name = "getroomcount")]
    GetRoomCount,
    /// `getroommembers` of a room pre-filled with `--room-size` members.
    #[value(name = "getroommembers")]
    GetRoomMembers,
    /// `isbanofroom` of a random uid in a random room.
    #[value(name = "isbanofroom")]
    IsBanOfRoom,
    /// `setroominfo` (oinfo) of a random room.
    #[value(name = "setroominfo")]
    SetRoomInfo,
    /// `getroominfo` of a random room.
    #[value(name = "getroominfo")]
    GetRoomInfo,
    /// `addroomban` of a random uid in a random room, for 60 s.
    #[value(name = "addroomban")]
    AddRoomBan,
    /// `sendroommsg` of a 100-byte text message (mtype 51) from a random
    /// uid to a random room, with a fresh mid (stored as history when on).
    #[value(name = "sendroommsg")]
    SendRoomMsg,
    /// `getroommsg`: the newest 20 messages of a random room.
    #[value(name = "getroommsg")]
    GetRoomMsg,
    /// `*ping` (unsigned).
    #[value(name = "ping")]
    Ping,
}

impl Op {
    /// Every operation.
    pub const ALL: &'static [Self] = &[
        Self::AddRoomMember,
        Self::DelRoomMember,
        Self::AddRoomMembers,
        Self::GetRoomCount,
        Self::GetRoomMembers,
        Self::IsBanOfRoom,
        Self::SetRoomInfo,
        Self::GetRoomInfo,
        Self::AddRoomBan,
        Self::SendRoomMsg,
        Self::GetRoomMsg,
        Self::Ping,
    ];

    /// The FPNN method name.
    pub fn method(self) -> &'static str {
        match self {
            Self::AddRoomMember => AddRoomMember::NAME,
            Self::DelRoomMember => DelRoomMember::NAME,
            Self::AddRoomMembers => AddRoomMembers::NAME,
            Self::GetRoomCount => GetRoomCount::NAME,
            Self::GetRoomMembers => GetRoomMembers::NAME,
            Self::IsBanOfRoom => IsBanOfRoom::NAME,
            Self::SetRoomInfo => SetRoomInfo::NAME,
            Self::GetRoomInfo => GetRoomInfo::NAME,
            Self::AddRoomBan => AddRoomBan::NAME,
            Self::SendRoomMsg => SendRoomMsg::NAME,
            Self::GetRoomMsg => GetRoomMsg::NAME,
            Self::Ping => Ping::NAME,
        }
    }

    /// Parses a method name.
    pub fn from_method(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|op| op.method() == name)
    }
}

/// The shape of the data a run works on.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Project id.
    pub pid: i64,
    /// Project secret.
    pub secret: String,
    /// Random rooms are drawn from `1..=rooms`.
    pub rooms: i64,
    /// Random uids are drawn from `1..=uids`.
    pub uids: i64,
    /// Members of the room `getroommembers` reads.
    pub room_size: usize,
    /// The weighted operations to draw from.
    pub mix: Vec<(Op, u32)>,
    /// Random seed.
    pub seed: u64,
}

impl Workload {
    /// The room `getroommembers` reads: outside the random range, so random
    /// writes never change its size.
    pub fn members_room(&self) -> i64 {
        self.rooms + 1
    }
}

/// A small, fast PRNG (SplitMix64); good enough for picking ids.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `1..=max`.
    pub fn id(&mut self, max: i64) -> i64 {
        (self.next_u64() % max.max(1) as u64) as i64 + 1
    }
}

/// Words `sendroommsg` bodies are made of: text that compresses like
/// chat, not one repeated string (which would flatter history's disk use).
const WORDS: &[&str] = &[
    "the", "a", "gg", "lol", "nice", "shot", "wait", "go", "left", "right", "push", "mid", "heal", "me", "now", "ok",
    "no", "yes", "team", "fight", "boss", "drop", "loot", "win", "lost", "again", "ready", "afk", "brb", "where",
    "you", "is",
];

static SALT: AtomicI64 = AtomicI64::new(0);

/// A salt no other quest of this process used, so every quest is distinct
/// and signed exactly as a careful client would sign it.
fn next_salt() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64);
    let _ = SALT.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    SALT.fetch_add(1, Ordering::Relaxed)
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Encodes quests for one connection.
#[derive(Debug, Clone)]
pub struct Generator {
    workload: Arc<Workload>,
    rng: Rng,
    total_weight: u32,
}

impl Generator {
    /// A generator for connection number `index`.
    pub fn new(workload: Arc<Workload>, index: usize) -> Self {
        let total_weight = workload.mix.iter().map(|(_, w)| w).sum::<u32>().max(1);
        let rng = Rng::new(workload.seed ^ (index as u64).wrapping_mul(0xA24B_AED4_963E_E407));
        Self { workload, rng, total_weight }
    }

    /// Draws the next operation from the mix.
    pub fn pick(&mut self) -> Op {
        let mut ticket = (self.rng.next_u64() % u64::from(self.total_weight)) as u32;
        for &(op, weight) in &self.workload.mix {
            if ticket < weight {
                return op;
            }
            ticket -= weight;
        }
        self.workload.mix[0].0
    }

    /// Appends the next quest, with `seq`, to `out`.
    pub fn encode_next(&mut self, out: &mut BytesMut, seq: u32) {
        let op = self.pick();
        let w = &*self.workload;
        let (rooms, uids) = (w.rooms, w.uids);
        match op {
            Op::AddRoomMember => {
                let req = AddRoomMember { rid: self.rng.id(rooms), uid: self.rng.id(uids) };
                self.signed(out, seq, &req);
            }
            Op::DelRoomMember => {
                let req = DelRoomMember { rid: self.rng.id(rooms), uid: self.rng.id(uids) };
                self.signed(out, seq, &req);
            }
            Op::AddRoomMembers => {
                let rid = self.rng.id(rooms);
                let uids = (0..10).map(|_| self.rng.id(uids)).collect();
                self.signed(out, seq, &AddRoomMembers { rid, uids });
            }
            Op::GetRoomCount => {
                let req = GetRoomCount::new(vec![self.rng.id(rooms)]);
                self.signed(out, seq, &req);
            }
            Op::GetRoomMembers => {
                let req = GetRoomMembers { rid: w.members_room() };
                self.signed(out, seq, &req);
            }
            Op::IsBanOfRoom => {
                let req = IsBanOfRoom { rid: self.rng.id(rooms), uid: self.rng.id(uids) };
                self.signed(out, seq, &req);
            }
            Op::SetRoomInfo => {
                let req = SetRoomInfo { rid: self.rng.id(rooms), oinfo: Some("room-info-value".into()), pinfo: None };
                self.signed(out, seq, &req);
            }
            Op::GetRoomInfo => {
                let req = GetRoomInfo { rid: self.rng.id(rooms) };
                self.signed(out, seq, &req);
            }
            Op::AddRoomBan => {
                let req = AddRoomBan { rid: Some(self.rng.id(rooms)), uid: self.rng.id(uids), btime: 60 };
                self.signed(out, seq, &req);
            }
            Op::SendRoomMsg => {
                let req = SendRoomMsg {
                    mtype: 51,
                    from: self.rng.id(uids),
                    rid: self.rng.id(rooms),
                    mid: next_salt(),
                    msg: rtm_protocol::client::MessageBody::Text(self.text_100b()),
                    attrs: String::new(),
                };
                self.signed(out, seq, &req);
            }
            Op::GetRoomMsg => {
                let req = GetRoomMsg {
                    uid: 1,
                    rid: self.rng.id(rooms),
                    desc: true,
                    num: 20,
                    begin: 0,
                    end: 0,
                    lastid: 0,
                    mtypes: None,
                };
                self.signed(out, seq, &req);
            }
            Op::Ping => {
                write_quest(out, Encoding::MsgPack, Some(seq), Ping::NAME, &Ping {}).expect("ping encodes");
            }
        }
    }

    /// 100 bytes of random words.
    fn text_100b(&mut self) -> String {
        let mut text = String::with_capacity(110);
        while text.len() < 100 {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(WORDS[(self.rng.next_u64() % WORDS.len() as u64) as usize]);
        }
        text.truncate(100);
        text
    }

    /// Appends a signed quest.
    pub fn signed<M: Method>(&self, out: &mut BytesMut, seq: u32, params: &M) {
        let w = &*self.workload;
        let auth = ServerAuth::new(w.pid, &w.secret, next_salt(), M::NAME, now_secs());
        write_quest(out, Encoding::MsgPack, Some(seq), M::NAME, &Signed { auth: &auth, params })
            .expect("requests encode");
    }
}

/// Parses `addroommember=40,getroomcount=60` (a bare name weighs 1).
pub fn parse_mix(text: &str) -> Result<Vec<(Op, u32)>, String> {
    let mut mix = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
        let op = Op::from_method(name.trim()).ok_or_else(|| format!("unknown operation '{name}'"))?;
        let weight: u32 = weight.trim().parse().map_err(|_| format!("bad weight in '{part}'"))?;
        if weight > 0 {
            mix.push((op, weight));
        }
    }
    if mix.is_empty() {
        return Err("the mix has no operation with a positive weight".into());
    }
    Ok(mix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(mix: Vec<(Op, u32)>) -> Arc<Workload> {
        Arc::new(Workload { pid: 1, secret: "s".into(), rooms: 10, uids: 100, room_size: 20, mix, seed: 7 })
    }

    #[test]
    fn mixes_parse_and_weights_are_respected() {
        let mix = parse_mix("addroommember=3, getroomcount=1").unwrap();
        assert_eq!(mix, vec![(Op::AddRoomMember, 3), (Op::GetRoomCount, 1)]);
        assert!(parse_mix("nosuch=1").is_err());
        assert!(parse_mix("ping=0").is_err());
        let mut g = Generator::new(workload(mix), 0);
        let adds = (0..40_000).filter(|_| g.pick() == Op::AddRoomMember).count();
        assert!((29_000..31_000).contains(&adds), "{adds}");
    }

    #[test]
    fn ids_stay_in_range_and_quests_decode() {
        let mut rng = Rng::new(1);
        assert!((0..10_000).map(|_| rng.id(5)).all(|id| (1..=5).contains(&id)));
        let mut g = Generator::new(workload(Op::ALL.iter().map(|&op| (op, 1)).collect()), 3);
        let mut out = BytesMut::new();
        for seq in 1..=100 {
            g.encode_next(&mut out, seq);
        }
        let mut n = 0;
        while let Some(rtm_protocol::Frame::Quest(q)) = rtm_protocol::Frame::decode(&mut out, 1 << 20).unwrap() {
            n += 1;
            assert_eq!(q.seq, Some(n));
            assert!(Op::from_method(q.method_str().unwrap()).is_some());
        }
        assert_eq!(n, 100);
    }

    #[test]
    fn salts_never_repeat() {
        let a = next_salt();
        let b = next_salt();
        assert!(b > a);
    }
}
