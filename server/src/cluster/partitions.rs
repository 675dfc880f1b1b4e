//! Rooms to partitions, partitions to hash tags and slots. I/O-free.
//!
//! A room hashes to one of [`PARTITIONS`] partitions, fixed forever (a
//! change would move every room). Every key of a partition carries the
//! partition's hash tag, so one function call touches one slot. The tags
//! are chosen so that partition `i`'s slot falls in the `i`-th of
//! [`PARTITIONS`] equal slot ranges: any master layout that splits the
//! slots evenly then gets an even share of partitions (bare tags `{0}`..
//! `{127}` cluster on a few slots; centrifugal/centrifuge#554).

/// Partitions of the room space.
pub(crate) const PARTITIONS: usize = 128;
/// Redis Cluster hash slots.
pub(crate) const SLOTS: u16 = 16384;

/// The partition of a room (or of a project's all-rooms state, `rid` 0).
pub(crate) fn partition_of(pid: i64, rid: i64) -> usize {
    // splitmix64 of both ids: stable across builds and platforms.
    let mut x = (pid as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (rid as u64);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x % PARTITIONS as u64) as usize
}

/// The hash slot of a key (CRC16/XMODEM of its hash tag, as Redis Cluster).
#[cfg(test)]
pub(crate) fn slot_of(key: &[u8]) -> u16 {
    let tagged = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16(tagged) % SLOTS
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// The partitions' hash tags and their slots.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// `prefix[i]` is `<namespace>:{tag}`, the key every key of partition `i` starts with.
    prefixes: Vec<String>,
    slots: Vec<u16>,
}

impl Layout {
    /// Finds, for each partition, the first tag `p<i>.<n>` whose slot lies
    /// in the partition's slot range (a few hundred tries at most).
    /// `namespace` starts every key and channel (several deployments can
    /// share one cluster).
    pub(crate) fn new(namespace: &str) -> Self {
        let width = SLOTS as usize / PARTITIONS;
        let mut prefixes = Vec::with_capacity(PARTITIONS);
        let mut slots = Vec::with_capacity(PARTITIONS);
        for i in 0..PARTITIONS {
            let range = (i * width) as u16..((i + 1) * width) as u16;
            let (tag, slot) = (0u32..)
                .map(|n| {
                    let tag = format!("p{i}.{n}");
                    let slot = crc16(tag.as_bytes()) % SLOTS;
                    (tag, slot)
                })
                .find(|(_, slot)| range.contains(slot))
                .expect("some tag hashes into every range");
            prefixes.push(format!("{namespace}:{{{tag}}}"));
            slots.push(slot);
        }
        Self { prefixes, slots }
    }

    /// `<namespace>:{tag}` of partition `partition`.
    pub(crate) fn prefix(&self, partition: usize) -> &str {
        &self.prefixes[partition]
    }

    /// The slot of partition `partition`.
    pub(crate) fn slot(&self, partition: usize) -> u16 {
        self.slots[partition]
    }

    /// The shard channel of partition `partition`.
    pub(crate) fn channel(&self, partition: usize) -> String {
        format!("{}:ch", self.prefixes[partition])
    }

    /// The partition whose shard channel is `channel`.
    pub(crate) fn partition_of_channel(&self, channel: &[u8]) -> Option<usize> {
        let prefix = channel.strip_suffix(b":ch")?;
        self.prefixes.iter().position(|p| p.as_bytes() == prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from `CLUSTER KEYSLOT`.
        assert_eq!(slot_of(b"foo"), 12182);
        assert_eq!(slot_of(b"{user1000}.following"), slot_of(b"{user1000}.followers"));
        assert_eq!(slot_of(b"123456789"), 0x31C3 % SLOTS);
        assert_eq!(slot_of(b"a{}b"), slot_of(b"a{}b"));
    }

    #[test]
    fn every_partition_owns_its_slot_range() {
        let layout = Layout::new("rtm");
        let width = SLOTS as usize / PARTITIONS;
        for i in 0..PARTITIONS {
            assert_eq!(layout.slot(i) as usize / width, i);
            assert_eq!(slot_of(layout.prefix(i).as_bytes()), layout.slot(i));
            assert_eq!(layout.partition_of_channel(layout.channel(i).as_bytes()), Some(i));
        }
        // Three masters splitting the slots evenly get 42 or 43 partitions each.
        let mut per_master = [0; 3];
        for i in 0..PARTITIONS {
            per_master[(layout.slot(i) as usize * 3) / SLOTS as usize] += 1;
        }
        assert!(per_master.iter().all(|&n| (42..=43).contains(&n)), "{per_master:?}");
    }

    #[test]
    fn rooms_spread_over_partitions() {
        let mut counts = [0usize; PARTITIONS];
        for rid in 0..128_000 {
            counts[partition_of(1, rid)] += 1;
        }
        assert!(counts.iter().all(|&n| (800..1200).contains(&n)), "{:?}", &counts[..8]);
        assert_eq!(partition_of(5, 7), partition_of(5, 7));
    }
}
