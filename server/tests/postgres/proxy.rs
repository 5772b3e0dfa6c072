//! A TCP proxy between the server's store and PostgreSQL (on 127.0.0.1:0) that reads the
//! client's side of the wire protocol, so a test can cut a connection at an exact message:
//! right after a purchase's `COMMIT` (or its one-statement purchase) was sent, or right before.
//! It can also be taken down (every connection cut, new ones refused) and brought back: to the
//! server that is a database restart, while the test cluster shared with parallel tests stays up.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Which message of the client's a cut is armed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On {
    /// A simple query `COMMIT` (how tokio-postgres commits a transaction).
    Commit,
    /// The execution (Bind, up to its Sync) of a prepared statement whose text contains this.
    Statement(&'static str),
}

/// Where the connection is cut, relative to the armed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Nothing of the message reaches PostgreSQL.
    Before,
    /// The message (with the rest of its batch, up to Sync) reaches PostgreSQL and the
    /// connection is cut at once: the commit may happen, or not (if the backend is ended first).
    InFlight,
    /// The message reaches PostgreSQL, which answers it in full (up to ReadyForQuery): the
    /// commit happened, and the client never hears of it.
    Reply,
}

#[derive(Default)]
struct Armed {
    /// The next cut, fired once.
    cut: Option<(On, Cut)>,
    fired: bool,
    /// PostgreSQL closed the cut connection: the backend that served it has exited.
    settled: bool,
    /// Refuse new connections once the cut has fired, until `set(true)`.
    then_down: bool,
}

/// Forwards 127.0.0.1:port to `upstream` while up; cuts everything while down.
pub struct Proxy {
    pub addr: SocketAddr,
    up: Arc<watch::Sender<bool>>,
    armed: Arc<Mutex<Armed>>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, watcher) = watch::channel(true);
        let up = Arc::new(up);
        let armed = Arc::new(Mutex::new(Armed::default()));
        let (shared, sender) = (armed.clone(), up.clone());
        tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                let mut state = watcher.clone();
                if !*state.borrow_and_update() {
                    continue; // dropped: refused
                }
                let (armed, up) = (shared.clone(), sender.clone());
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let mut inbound = inbound;
                    if let Some(then_down) = relay(&mut inbound, &mut outbound, &armed, &up).await {
                        cut(inbound, outbound, &up, then_down).await;
                        armed.lock().unwrap().settled = true;
                    }
                });
            }
        });
        Self { addr, up, armed }
    }

    /// Up: forward; down: cut every connection and refuse new ones.
    pub fn set(&self, up: bool) {
        self.up.send_replace(up);
    }

    /// Cuts the next connection that sends `on`, once; `then_down`: and goes down with it.
    pub fn arm(&self, on: On, cut: Cut, then_down: bool) {
        *self.armed.lock().unwrap() = Armed {
            cut: Some((on, cut)),
            then_down,
            ..Armed::default()
        };
    }

    /// Whether the armed cut has happened.
    pub fn fired(&self) -> bool {
        self.armed.lock().unwrap().fired
    }

    /// Waits (at most 30 s) until PostgreSQL has closed the cut connection: its backend has
    /// exited, so whatever it did is final.
    pub async fn settled(&self) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        while !self.armed.lock().unwrap().settled {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the cut backend never exited"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// `url` (`postgres://user@127.0.0.1:port/db`) through this proxy.
    pub fn url(&self, url: &str) -> String {
        url.replacen(&upstream(url).to_string(), &self.addr.to_string(), 1)
    }
}

/// `host:port` of a `postgres://user@host:port/db` URL.
pub fn upstream(url: &str) -> SocketAddr {
    let rest = url.split_once("://").unwrap().1;
    let host_port = rest.split_once('@').map_or(rest, |(_, h)| h);
    let host_port = host_port.split('/').next().unwrap();
    host_port
        .parse()
        .expect("the test URL names 127.0.0.1:port")
}

/// The client's side of the protocol, split into messages as it arrives.
#[derive(Default)]
struct Frontend {
    buf: Vec<u8>,
    /// Past the startup message (before it, messages carry no type byte).
    started: bool,
    /// Prepared statements: name → text.
    statements: HashMap<String, String>,
}

/// A message: its type (0 before startup) and all its bytes.
struct Message {
    kind: u8,
    bytes: Vec<u8>,
}

fn c_string(body: &[u8]) -> (String, &[u8]) {
    let end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
    let text = String::from_utf8_lossy(&body[..end]).into_owned();
    (text, body.get(end + 1..).unwrap_or_default())
}

impl Frontend {
    fn next(&mut self) -> Option<Message> {
        let header = if self.started { 5 } else { 4 };
        if self.buf.len() < header {
            return None;
        }
        let at = header - 4;
        let len = u32::from_be_bytes(self.buf[at..at + 4].try_into().unwrap()) as usize;
        let total = at + len;
        if self.buf.len() < total {
            return None;
        }
        let bytes: Vec<u8> = self.buf.drain(..total).collect();
        if !self.started {
            // The startup message names protocol 3.0; SSL and GSS requests come before it.
            let code = u32::from_be_bytes(bytes[4..8].try_into().unwrap());
            self.started = code == 196_608;
            return Some(Message { kind: 0, bytes });
        }
        let kind = bytes[0];
        if kind == b'P' {
            let (name, rest) = c_string(&bytes[5..]);
            let (text, _) = c_string(rest);
            self.statements.insert(name, text);
        }
        Some(Message { kind, bytes })
    }

    fn is(&self, message: &Message, on: On) -> bool {
        match (message.kind, on) {
            (b'Q', On::Commit) => c_string(&message.bytes[5..])
                .0
                .trim()
                .eq_ignore_ascii_case("COMMIT"),
            (b'B', On::Statement(needle)) => {
                let (_portal, rest) = c_string(&message.bytes[5..]);
                let (statement, _) = c_string(rest);
                self.statements
                    .get(&statement)
                    .is_some_and(|text| text.contains(needle))
            }
            _ => false,
        }
    }
}

/// Relays one connection until either side closes, the proxy goes down (`None`) or the armed
/// cut fires: `Some(then_down)`.
async fn relay(
    client: &mut TcpStream,
    server: &mut TcpStream,
    armed: &Mutex<Armed>,
    up: &watch::Sender<bool>,
) -> Option<bool> {
    let mut down = up.subscribe();
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let mut front = Frontend::default();
    let (mut from_client, mut from_server) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    // Set when the armed cut fired; `sent`: the armed message's batch is through.
    let mut cutting: Option<(Cut, bool)> = None;
    let mut sent = false;
    // PostgreSQL's replies once the batch is through (`Cut::Reply`), up to ReadyForQuery.
    let mut reply = Vec::new();
    loop {
        tokio::select! {
            read = client.read(&mut from_client), if !sent => {
                let n = read.ok().filter(|&n| n > 0)?;
                front.buf.extend_from_slice(&from_client[..n]);
                while let Some(message) = front.next() {
                    if cutting.is_none() {
                        let mut armed = armed.lock().unwrap();
                        if let Some((on, cut)) = armed.cut
                            && front.is(&message, on)
                        {
                            armed.cut = None;
                            armed.fired = true;
                            cutting = Some((cut, armed.then_down));
                        }
                    }
                    let Some((cut, then_down)) = cutting else {
                        server.write_all(&message.bytes).await.ok()?;
                        continue;
                    };
                    if cut == Cut::Before {
                        return Some(then_down);
                    }
                    server.write_all(&message.bytes).await.ok()?;
                    if matches!(message.kind, b'Q' | b'S') {
                        if cut == Cut::InFlight {
                            return Some(then_down);
                        }
                        sent = true;
                        break;
                    }
                }
            }
            read = server.read(&mut from_server) => {
                let n = read.ok().filter(|&n| n > 0)?;
                match cutting {
                    None => client.write_all(&from_server[..n]).await.ok()?,
                    Some((_, then_down)) if sent => {
                        reply.extend_from_slice(&from_server[..n]);
                        if ready_for_query(&mut reply) {
                            return Some(then_down);
                        }
                    }
                    // Replies to the batch's earlier messages: not for the client any more.
                    Some(_) => {}
                }
            }
            () = async { drop(down.wait_for(|up| !*up).await) } => return None,
        }
    }
}

/// Whether PostgreSQL's messages in `buf` (consumed as they complete) reach ReadyForQuery.
fn ready_for_query(buf: &mut Vec<u8>) -> bool {
    while buf.len() >= 5 {
        let len = u32::from_be_bytes(buf[1..5].try_into().unwrap()) as usize;
        if buf.len() < 1 + len {
            return false;
        }
        let kind = buf[0];
        buf.drain(..1 + len);
        if kind == b'Z' {
            return true;
        }
    }
    false
}

/// A cut: the client's side closes at once; PostgreSQL's gets an orderly end of stream after
/// what was forwarded (never a reset, which could discard it unread) and its replies are read
/// and dropped until it closes.
async fn cut(client: TcpStream, mut server: TcpStream, up: &watch::Sender<bool>, then_down: bool) {
    drop(client);
    if then_down {
        up.send_replace(false);
    }
    let _ = server.shutdown().await;
    let mut sink = vec![0u8; 16 * 1024];
    let drained = async { while server.read(&mut sink).await.is_ok_and(|n| n > 0) {} };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), drained).await;
}
