//! Replays the committed seed corpus of the `decode_frame` fuzz target (and
//! any crash it found and we fixed) as an ordinary test.

use std::path::Path;

#[test]
fn replay_decode_frame_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/decode_frame");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("the seed corpus is committed") {
        let path = entry.unwrap().path();
        if path.is_file() {
            let data = std::fs::read(&path).unwrap();
            rtm_protocol::fuzz_decode(&data);
            count += 1;
        }
    }
    assert!(count >= 10, "expected the seed corpus in {}, found {count} files", dir.display());
}
