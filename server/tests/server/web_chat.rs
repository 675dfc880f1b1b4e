//! The web chat page (`examples/web-chat`) in a real headless Chromium,
//! driven through chromedriver (WebDriver over HTTP), against the real
//! server: log in with a demo token, enter a room, see its history and the
//! others' messages live, send, be told of a mute, scroll back.
//! `.ci/run` installs `chromium` and `chromium-driver` from the distribution.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rtm_protocol::client::{self as c, MessageBody, PushRoomMsg};
use rtm_protocol::methods::AddRoomBan;
use rtm_protocol::payload;
use serde_json::{json, Value};

use crate::client_gate::Player;
use crate::support::*;

/// A WebDriver session in headless Chromium.
struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
}

impl Browser {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is needed for the browser test: run .ci/run, which installs chromium-driver");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut browser = Self { driver, addr, session: String::new() };
        let started = Instant::now();
        while TcpStream::connect(addr).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let chrome = json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        });
        let capabilities =
            json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": chrome}}});
        let created = browser.request("POST", "/session", Some(capabilities));
        browser.session = created["value"]["sessionId"].as_str().expect("a WebDriver session").to_owned();
        browser
    }

    fn request(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut stream = TcpStream::connect(self.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .unwrap();
        // chromedriver may keep the connection open: read by Content-Length.
        let mut response = Vec::new();
        let mut chunk = [0u8; 8192];
        let (head_len, body_len) = loop {
            let n = stream.read(&mut chunk).unwrap();
            assert!(n > 0, "chromedriver closed without an answer");
            response.extend_from_slice(&chunk[..n]);
            if let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .expect("a Content-Length");
                break (end + 4, length);
            }
        };
        while response.len() < head_len + body_len {
            let n = stream.read(&mut chunk).unwrap();
            assert!(n > 0, "chromedriver closed mid-answer");
            response.extend_from_slice(&chunk[..n]);
        }
        let json = String::from_utf8_lossy(&response[head_len..head_len + body_len]).into_owned();
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("WebDriver answered {json}: {e}"))
    }

    fn open(&self, url: &str) {
        self.request("POST", &format!("/session/{}/url", self.session), Some(json!({ "url": url })));
    }

    /// Runs `script` in the page and returns its value.
    fn run(&self, script: &str) -> Value {
        let body = json!({ "script": script, "args": [] });
        self.request("POST", &format!("/session/{}/execute/sync", self.session), Some(body))["value"].clone()
    }

    fn type_into(&self, id: &str, text: &str) {
        self.run(&format!("const e = document.getElementById({id:?}); e.value = {text:?};"));
    }

    fn click(&self, id: &str) {
        self.run(&format!("document.getElementById({id:?}).click();"));
    }

    fn text(&self, id: &str) -> String {
        self.run(&format!("return document.getElementById({id:?}).textContent;")).as_str().unwrap_or("").to_owned()
    }

    fn messages(&self) -> Vec<String> {
        let lines = self.run("return [...document.querySelectorAll('#messages li')].map(li => li.textContent);");
        lines.as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_owned()).collect()
    }

    /// Saves a screenshot of the page as `<CARGO_TARGET_TMPDIR>/web-chat/<name>.png`,
    /// the test's artifacts.
    fn screenshot(&self, name: &str) {
        use base64::Engine;
        let shot = self.request("GET", &format!("/session/{}/screenshot", self.session), None);
        let png = base64::engine::general_purpose::STANDARD.decode(shot["value"].as_str().unwrap()).unwrap();
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-chat");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Logs in as `uid` with a demo token and enters room 7.
    fn join(&self, url: &str, uid: i64) {
        self.open(url);
        self.type_into("pid", &PID.to_string());
        self.type_into("uid", &uid.to_string());
        self.click("login");
        self.wait_for("the login", |b| b.text("status") == format!("Logged in as {uid}."));
        self.type_into("room", "7");
        self.click("enter");
        self.wait_for("the room", |b| b.text("status") == "In room 7.");
    }

    /// Waits until `check` holds of the page (10 s at most).
    fn wait_for(&self, what: &str, check: impl Fn(&Self) -> bool) {
        let started = Instant::now();
        while !check(self) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the page never showed {what}: status {:?}, messages {:?}",
                self.text("status"),
                self.messages()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = std::panic::catch_unwind(|| self.request("DELETE", &format!("/session/{}", self.session), None));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn says(text: &str) -> c::SendRoomMsg {
    c::SendRoomMsg {
        rid: 7,
        mid: 0,
        mtype: 30,
        msg: MessageBody::Text(text.into()),
        attrs: String::new(),
        strategyid: None,
        check_params: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_chat_page_in_a_real_browser() {
    let server = TestServer::start_with(|c| {
        c.websocket.chat_page = true;
        c.websocket.demo_token_pid = PID;
        c.limits.client_messages_per_second = 0;
    })
    .await;
    // Carol (a TCP client) was there first: 12 messages of history.
    let mut carol = Player::login(&server, 3).await;
    carol.call(&c::EnterRoom { rid: 7 }).await.unwrap();
    for i in 1..=12 {
        carol.call(&c::SendRoomMsg { mid: i, ..says(&format!("earlier {i}")) }).await.unwrap();
    }
    let url = format!("http://{}/chat/", server.ws_addr);
    let (alice, bob) = tokio::task::spawn_blocking(move || {
        // Two pages, two users, one room.
        let (alice, bob) = (Browser::start(), Browser::start());
        alice.join(&url, 1);
        alice.screenshot("1-alice-in-room-7");
        // The newest 10 of history, oldest first; then the older ones.
        alice.wait_for("the history", |b| b.messages().len() == 10);
        let shown = alice.messages();
        assert!(shown[0].ends_with("3: earlier 3") && shown[9].ends_with("3: earlier 12"), "{shown:?}");
        alice.click("older");
        alice.wait_for("older messages", |b| b.messages().len() == 12);
        assert!(alice.messages()[0].ends_with("3: earlier 1"));
        bob.join(&url, 2);
        // One sends, the other shows it.
        alice.type_into("text", "hello bob");
        alice.click("send");
        bob.wait_for("alice's message", |b| b.messages().iter().any(|m| m.ends_with("1: hello bob")));
        bob.screenshot("2-bob-sees-alice");
        (alice, bob)
    })
    .await
    .unwrap();
    // TCP clients in the room hear the browser (as chat).
    let push = carol.push("pushroommsg").await;
    let push: PushRoomMsg = payload::decode(push.encoding, &push.payload).unwrap();
    assert_eq!((push.from, push.msg), (1, MessageBody::Chat(c::ChatBody::untranslated("hello bob"))));

    // A backend mutes bob: his next send shows the refusal.
    server.client().await.call(&AddRoomBan { rid: Some(7), uid: 2, btime: 60 }).await.unwrap();
    let url = format!("http://{}/chat/", server.ws_addr);
    tokio::task::spawn_blocking(move || {
        bob.type_into("text", "can you hear me?");
        bob.click("send");
        bob.wait_for("the mute", |b| b.text("status") == "You are muted in this room.");
        assert!(!bob.messages().iter().any(|m| m.contains("can you hear me?")));
        bob.screenshot("3-bob-muted");
        assert!(!alice.messages().iter().any(|m| m.contains("can you hear me?")), "nothing reached alice");
        // A reload (a new session) shows the history, alice's message last.
        alice.join(&url, 1);
        alice.wait_for("the history after a reload", |b| {
            b.messages().last().is_some_and(|m| m.ends_with("1: hello bob"))
        });
        alice.screenshot("4-alice-reloaded");
    })
    .await
    .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn the_page_and_its_demo_token_are_off_unless_configured() {
    let server = TestServer::start().await;
    let (status, _) = http_get(server.ws_addr, "/chat/").await;
    assert_eq!(status, 404);
    let server_on = TestServer::start_with(|c| c.websocket.chat_page = true).await;
    let (status, page) = http_get(server_on.ws_addr, "/chat/").await;
    assert_eq!(status, 200);
    assert!(page.contains("chat.js"), "{page}");
    let (status, _) = http_get(server_on.ws_addr, "/chat/token?uid=1").await;
    assert_eq!(status, 404, "no demo tokens unless demo_token_pid is set");
    server.stop().await;
    server_on.stop().await;
}
