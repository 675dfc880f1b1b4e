//! Event listeners during a load run: connections that subscribe to every
//! room event of the project (`setlisten {room, ev}`) and count the
//! `pushevent` quests they receive, answering the server's pings.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use rtm_protocol::methods::{Empty, SetListen};
use rtm_protocol::{write_answer, Frame, DEFAULT_MAX_FRAME_LEN};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::workload::{Generator, Workload};

/// What the listeners saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ListenReport {
    /// Listeners started.
    pub listeners: usize,
    /// `pushevent` quests received, all listeners together.
    pub events: u64,
    /// Listeners whose connection the server closed during the run (too slow).
    pub disconnected: u64,
}

/// Running listeners.
pub struct Listeners {
    events: Arc<AtomicU64>,
    disconnected: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<()>>,
}

impl Listeners {
    /// Connects `count` listeners and waits until each is subscribed.
    pub async fn start(addr: SocketAddr, workload: Arc<Workload>, count: usize) -> std::io::Result<Self> {
        let events = Arc::new(AtomicU64::new(0));
        let disconnected = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::with_capacity(count);
        for index in 0..count {
            let mut stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let mut out = BytesMut::new();
            let everything = SetListen { room: Some(true), ev: Some(true), ..SetListen::default() };
            Generator::new(workload.clone(), usize::MAX - index).signed(&mut out, 1, &everything);
            stream.write_all(&out).await?;
            let mut rbuf = BytesMut::with_capacity(64 * 1024);
            // The first frame is the answer to setlisten.
            match read_frame(&mut stream, &mut rbuf).await {
                Some(Frame::Answer(answer)) if answer.status == 0 => {}
                other => return Err(std::io::Error::other(format!("setlisten failed: {other:?}"))),
            }
            let (events, disconnected) = (events.clone(), disconnected.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    match read_frame(&mut stream, &mut rbuf).await {
                        Some(Frame::Quest(q)) if &q.method[..] == b"pushevent" => {
                            events.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(Frame::Quest(q)) => {
                            if let Some(seq) = q.seq {
                                let mut answer = BytesMut::new();
                                let _ = write_answer(&mut answer, q.version, q.encoding, seq, 0, &Empty {});
                                let _ = stream.write_all(&answer).await;
                            }
                        }
                        Some(Frame::Answer(_)) => {}
                        None => {
                            disconnected.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    }
                }
            }));
        }
        Ok(Self { events, disconnected, tasks })
    }

    /// Stops the listeners and reports.
    pub fn finish(self) -> ListenReport {
        for task in &self.tasks {
            task.abort();
        }
        ListenReport {
            listeners: self.tasks.len(),
            events: self.events.load(Ordering::Relaxed),
            disconnected: self.disconnected.load(Ordering::Relaxed),
        }
    }
}

async fn read_frame(stream: &mut TcpStream, rbuf: &mut BytesMut) -> Option<Frame> {
    loop {
        if let Some(frame) = Frame::decode(rbuf, DEFAULT_MAX_FRAME_LEN).ok()? {
            return Some(frame);
        }
        if rbuf.capacity() - rbuf.len() < 4096 {
            rbuf.reserve(64 * 1024);
        }
        match stream.read_buf(rbuf).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}
