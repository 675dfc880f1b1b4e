//! The metrics and health endpoints.

use std::collections::HashMap;
use std::time::Duration;

use rtm_protocol::methods::*;

use crate::support::*;

fn delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>, series: &str) -> f64 {
    after.get(series).copied().unwrap_or(0.0) - before.get(series).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn counters_and_histograms_move_by_what_was_done() {
    let server = TestServer::start_full(|_| {}, true, false).await;
    let (status, text) = server.http_get("/metrics").await;
    assert_eq!(status, 200);
    let before = parse_exposition(&text);

    let mut c = server.client().await;
    for uid in 0..5 {
        c.call(&AddRoomMember { rid: 1, uid }).await.unwrap();
    }
    c.call(&GetRoomCount::new(vec![1])).await.unwrap();
    c.call(&GetRoomCount::new(vec![1, 2])).await.unwrap();
    assert_eq!(error_code(&c.call_raw("nosuchmethod", &Empty {}).await), 20004);
    let bad = ServerAuth::new(PID, "wrong", 1, AddRoomMember::NAME, now_secs());
    let answer =
        c.call_raw(AddRoomMember::NAME, &Signed { auth: &bad, params: &AddRoomMember { rid: 1, uid: 9 } }).await;
    assert_eq!(error_code(&answer), 200002);
    let auth = c.auth(AddRoomMember::NAME);
    let answer = c.call_raw(AddRoomMember::NAME, &Signed { auth: &auth, params: &GetRoomInfo { rid: 1 } }).await;
    assert_eq!(error_code(&answer), 10009);
    c.call(&AddRoomBan { rid: Some(1), uid: 1, btime: 60 }).await.unwrap();
    let mut bad_frame = server.client().await;
    bad_frame.send(b"NOPE\x01\x80\x01\x01\x01\x00\x00\x00").await;
    bad_frame.expect_closed().await;
    tokio::time::sleep(Duration::from_millis(50)).await;

    let (_, text) = server.http_get("/metrics").await;
    let after = parse_exposition(&text);
    let d = |series: &str| delta(&before, &after, series);
    assert_eq!(d(r#"rtm_quests_total{code="0",method="addroommember"}"#), 5.0, "{text}");
    assert_eq!(d(r#"rtm_quests_total{code="0",method="getroomcount"}"#), 2.0);
    assert_eq!(d(r#"rtm_quests_total{code="20004",method="unknown"}"#), 1.0);
    assert_eq!(d(r#"rtm_quests_total{code="200002",method="addroommember"}"#), 1.0);
    assert_eq!(d(r#"rtm_quests_total{code="10009",method="addroommember"}"#), 1.0);
    assert_eq!(d(r#"rtm_quest_duration_seconds_count{method="addroommember"}"#), 7.0);
    assert_eq!(d(r#"rtm_quest_duration_seconds_count{method="getroomcount"}"#), 2.0);
    assert!(d(r#"rtm_quest_duration_seconds_sum{method="addroommember"}"#) > 0.0);
    assert_eq!(
        d(r#"rtm_quest_duration_seconds_bucket{method="getroomcount",le="+Inf"}"#),
        2.0,
        "the histogram's buckets count every quest"
    );
    assert_eq!(d(r#"rtm_auth_failures_total{reason="invalid_pid_or_sign"}"#), 1.0);
    assert_eq!(d(r#"rtm_frames_rejected_total{reason="bad_magic"}"#), 1.0);
    assert_eq!(d(r#"rtm_connections_accepted_total{listener="fpnn"}"#), 2.0);
    assert_eq!(after[r#"rtm_connections_open{transport="tcp"}"#], 1.0);
    assert_eq!(after["rtm_rooms"], 1.0);
    assert_eq!(after["rtm_memberships"], 5.0);
    assert_eq!(after["rtm_bans"], 1.0);
    assert!(d("rtm_received_bytes_total") > 500.0);
    assert!(d("rtm_sent_bytes_total") > 100.0);
    assert!(after["process_resident_memory_bytes"] > 0.0);
    assert!(!text.contains("rid=") && !text.contains("uid="), "no unbounded labels");
    server.stop().await;
}

#[tokio::test]
async fn health_and_readiness() {
    let mut server = TestServer::start_full(
        |c| {
            c.server.drain_timeout_secs = 2;
            c.gates.server.max_pending_answers = 16;
        },
        true,
        false,
    )
    .await;
    assert_eq!(server.http_get("/healthz").await, (200, "ok\n".into()));
    assert_eq!(server.http_get("/readyz").await, (200, "ready\n".into()));
    assert_eq!(server.http_get("/nope").await.0, 404);

    // A peer that never reads keeps the drain going for the drain timeout.
    let _stalled = stall_with_unread_answers(server.client().await, 200_000).await;
    server.begin_shutdown();
    let mut draining = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        let (status, body) = server.http_get("/readyz").await;
        if status == 503 {
            assert_eq!(body, "draining\n");
            draining = true;
            break;
        }
    }
    assert!(draining, "/readyz turned 503 while draining");
    assert_eq!(server.http_get("/healthz").await.0, 200, "still alive while draining");
    server.stop().await;
}

/// Every metric name a PromQL expression mentions (`rtm_*` and `process_*`).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts_name = (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'))
            && (expr[i..].starts_with("rtm_") || expr[i..].starts_with("process_"));
        if starts_name {
            let end = expr[i..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(expr.len(), |n| i + n);
            names.push(expr[i..end].to_string());
            i = end;
        } else {
            i += 1;
        }
    }
    names
}

#[tokio::test]
async fn every_metric_the_dashboard_queries_exists() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/grafana/rtm-server.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("the dashboard is valid JSON");
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect();
    assert!(exprs.len() >= 10, "{exprs:?}");

    // Exercise every labelled family so that it has series to show.
    let server = TestServer::start_full(|c| c.gates.server.max_connections = 2, true, false).await;
    let mut c = server.client().await;
    c.call(&AddRoomMember { rid: 1, uid: 1 }).await.unwrap();
    let bad = ServerAuth::new(PID, "wrong", 1, AddRoomMember::NAME, now_secs());
    c.call_raw(AddRoomMember::NAME, &Signed { auth: &bad, params: &AddRoomMember { rid: 1, uid: 9 } }).await;
    // A client login, so the client gate's families have series.
    let token = c.call(&GetToken { uid: 5, version: None }).await.unwrap().token;
    let mut player = crate::client_gate::Player::connect(server.client_addr).await;
    let auth =
        rtm_protocol::client::Auth { pid: PID, uid: 5, token, version: None, lang: None, attrs: None, device: None };
    assert!(player.call(&auth).await.unwrap().ok);
    let mut bad_frame = server.client().await;
    bad_frame.send(b"NOPE\x01\x80\x01\x01\x01\x00\x00\x00").await;
    bad_frame.expect_closed().await;
    let _extra = server.client().await;
    let mut refused = server.client().await;
    refused.expect_closed().await;
    let (_, text) = server.http_get("/metrics").await;

    let families: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next()).collect();
    for expr in &exprs {
        for name in metric_names(expr) {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix).filter(|base| families.contains(base)))
                .unwrap_or(&name);
            assert!(families.contains(&family), "the dashboard queries {name}, which the server does not export");
        }
    }
    server.stop().await;
}
