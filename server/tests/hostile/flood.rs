//! A raw HTTP/2 client that opens request streams and never sends their bodies, ignoring the
//! server's limits, and counts what the server answers on them.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The HPACK block of a purchase's request headers (static-table names, literal values).
pub fn purchase_headers() -> Vec<u8> {
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http
    let mut literal = |prefix: &[u8], value: &str| {
        block.extend_from_slice(prefix);
        block.push(u8::try_from(value.len()).unwrap());
        block.extend_from_slice(value.as_bytes());
    };
    literal(&[0x04], "/flashsale.v1.Checkout/PurchaseSafe"); // :path
    literal(&[0x01], "x"); // :authority
    literal(&[0x0f, 0x10], "application/grpc"); // content-type (index 31)
    block.extend_from_slice(&[0x00, 2, b't', b'e']);
    block.push(8);
    block.extend_from_slice(b"trailers");
    block
}

pub fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// What the server sent back on a flood's connection.
#[derive(Debug, Default)]
pub struct Counts {
    /// Streams answered with a final HEADERS frame (END_STREAM set).
    pub answered: AtomicUsize,
    /// Streams h2 refused with RST_STREAM(REFUSED_STREAM) (its per-connection limit).
    pub refused_by_h2: AtomicUsize,
}

/// One connection carrying a flood of half-open streams.
pub struct Flood {
    tcp: TcpStream,
    pub counts: Arc<Counts>,
    reader: Option<JoinHandle<()>>,
}

impl Flood {
    /// Opens `streams` request streams on one raw connection without ever sending their
    /// bodies, then returns once the server has read them all (it answered a PING sent last)
    /// or closed the connection. The connection stays open until the flood is dropped.
    pub fn open(addr: SocketAddr, streams: u32) -> Self {
        let mut tcp = TcpStream::connect(addr).unwrap();
        let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        out.extend(h2_frame(0x4, 0, 0, &[]));
        let headers = purchase_headers();
        for i in 0..streams {
            out.extend(h2_frame(0x1, 0x4, 2 * i + 1, &headers));
        }
        out.extend(h2_frame(0x6, 0, 0, b"floodend"));
        let counts = Arc::new(Counts::default());
        let (acked, ack) = mpsc::channel();
        let reader = {
            let tcp = tcp.try_clone().unwrap();
            let counts = counts.clone();
            std::thread::spawn(move || read_frames(tcp, &counts, &acked))
        };
        let _ = tcp.write_all(&out);
        // Either the PING's answer or the reader's end (connection closed).
        let _ = ack.recv_timeout(Duration::from_secs(120));
        Self {
            tcp,
            counts,
            reader: Some(reader),
        }
    }

    pub fn answered(&self) -> usize {
        self.counts.answered.load(Ordering::Acquire)
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        let _ = self.tcp.shutdown(Shutdown::Both);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// Reads frames until the connection ends, counting answers and signalling the PING's.
fn read_frames(mut tcp: TcpStream, counts: &Counts, acked: &mpsc::Sender<()>) {
    let mut header = [0u8; 9];
    loop {
        if tcp.read_exact(&mut header).is_err() {
            return; // closed
        }
        let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let mut payload = vec![0u8; len];
        if tcp.read_exact(&mut payload).is_err() {
            return;
        }
        match (header[3], header[4]) {
            (0x1, flags) if flags & 0x1 == 1 => {
                counts.answered.fetch_add(1, Ordering::AcqRel);
            }
            (0x3, _) if payload == [0, 0, 0, 7] => {
                counts.refused_by_h2.fetch_add(1, Ordering::AcqRel);
            }
            (0x6, flags) if flags & 0x1 == 1 && payload == b"floodend" => {
                let _ = acked.send(());
            }
            _ => {}
        }
    }
}
