//! Codec micro-benchmarks: a signed `addroommember` quest and its answer,
//! from the server's side (decode quest, read typed params, encode answer)
//! and from the client's side (sign and encode quest, decode answer).
//!
//! Run with `cargo bench -p rtm-protocol --bench codec`.

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use rtm_protocol::methods::{AddRoomMember, Empty, Method, ServerAuth, Signed};
use rtm_protocol::{params, payload, write_answer, write_quest, Encoding, Frame, DEFAULT_MAX_FRAME_LEN};

fn signed_quest() -> BytesMut {
    let auth = ServerAuth::new(11000001, "test-secret-key", 123456789, AddRoomMember::NAME, 1700000000);
    let params = AddRoomMember { rid: 7001, uid: 1001 };
    let mut out = BytesMut::new();
    write_quest(&mut out, Encoding::MsgPack, Some(1), AddRoomMember::NAME, &Signed { auth: &auth, params: &params })
        .unwrap();
    out
}

fn empty_answer() -> BytesMut {
    let mut out = BytesMut::new();
    write_answer(&mut out, 1, Encoding::MsgPack, 1, 0, &Empty {}).unwrap();
    out
}

fn benches(c: &mut Criterion) {
    let quest_bytes = signed_quest();
    let answer_bytes = empty_answer();

    c.bench_function("server_pair/decode_quest+params+encode_answer", |b| {
        let mut out = BytesMut::with_capacity(4096);
        b.iter(|| {
            let mut buf = quest_bytes.clone();
            let Some(Frame::Quest(quest)) = Frame::decode(&mut buf, DEFAULT_MAX_FRAME_LEN).unwrap() else {
                unreachable!()
            };
            let value = payload::parse(quest.encoding, &quest.payload).unwrap();
            let auth: ServerAuth = params::from_value(&value).unwrap();
            let req: AddRoomMember = params::from_value(&value).unwrap();
            black_box((&auth, &req));
            out.clear();
            write_answer(&mut out, quest.version, quest.encoding, quest.seq.unwrap(), 0, &Empty {}).unwrap();
            black_box(&out);
        })
    });

    c.bench_function("client_pair/sign+encode_quest+decode_answer", |b| {
        let mut out = BytesMut::with_capacity(4096);
        let params = AddRoomMember { rid: 7001, uid: 1001 };
        b.iter(|| {
            out.clear();
            let auth = ServerAuth::new(11000001, "test-secret-key", 123456789, AddRoomMember::NAME, 1700000000);
            write_quest(
                &mut out,
                Encoding::MsgPack,
                Some(1),
                AddRoomMember::NAME,
                &Signed { auth: &auth, params: &params },
            )
            .unwrap();
            let mut buf = answer_bytes.clone();
            let Some(Frame::Answer(answer)) = Frame::decode(&mut buf, DEFAULT_MAX_FRAME_LEN).unwrap() else {
                unreachable!()
            };
            let empty: Empty = payload::decode(answer.encoding, &answer.payload).unwrap();
            black_box((&out, empty));
        })
    });

    c.bench_function("frame/decode_quest", |b| {
        b.iter(|| {
            let mut buf = quest_bytes.clone();
            black_box(Frame::decode(&mut buf, DEFAULT_MAX_FRAME_LEN).unwrap());
        })
    });

    c.bench_function("frame/encode_empty_answer", |b| {
        let mut out = BytesMut::with_capacity(4096);
        b.iter(|| {
            out.clear();
            write_answer(&mut out, 1, Encoding::MsgPack, 1, 0, &Empty {}).unwrap();
            black_box(&out);
        })
    });

    c.bench_function("sign/md5_signature", |b| {
        b.iter(|| {
            black_box(rtm_protocol::sign::server_sign(
                black_box(11000001),
                "test-secret-key",
                123456789,
                "addroommember",
                1700000000,
            ))
        })
    });
}

criterion_group!(codec, benches);
criterion_main!(codec);
