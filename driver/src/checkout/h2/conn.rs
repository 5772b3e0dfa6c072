//! Dialling a connection and the one task that does its socket I/O: it reads frames and
//! applies them (completing streams), and writes everything queued since its last write in
//! one write, so the frames of the calls made in one tick leave together. What it queues is
//! bounded (see [`super::limits`]); the server must acknowledge our SETTINGS within the
//! connect timeout.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::Code;

use super::frame::{self, HEAD_LEN, reason};
use super::headers::MAX_HEADER_LIST;
use super::limits::{MAX_PENDING_PING_ACKS, MAX_PENDING_SETTINGS_ACKS, MAX_QUEUED_BYTES};
use super::reader::{ConnError, Reader};
use super::state::{Handle, Shared, State};
use super::{CONNECTION_WINDOW, STREAM_WINDOW};

/// How much the read buffer grows by when a read needs room.
const READ_CHUNK: usize = 64 * 1024;

/// Opens one HTTP/2 connection to `authority`: the preface and SETTINGS both ways (the
/// server's first SETTINGS is applied before any call), then the I/O task is spawned.
pub async fn dial(authority: &str, connect_timeout: Duration) -> std::io::Result<Handle> {
    let open = async {
        let mut tcp = TcpStream::connect(authority).await?;
        tcp.set_nodelay(true)?;
        let mut opening = Vec::new();
        frame::put_opening(
            &mut opening,
            STREAM_WINDOW,
            CONNECTION_WINDOW,
            MAX_HEADER_LIST,
        );
        tcp.write_all(&opening).await?;
        let mut state = State::default();
        let mut reader = Reader::new();
        let mut rbuf = Vec::with_capacity(READ_CHUNK);
        while !reader.settings_seen {
            if tcp.read_buf(&mut rbuf).await? == 0 {
                return Err(std::io::Error::other("closed before its HTTP/2 preface"));
            }
            let used = reader
                .read_opening(&mut state, &rbuf)
                .map_err(std::io::Error::other)?;
            rbuf.drain(..used);
        }
        Ok((tcp, state, reader, rbuf))
    };
    let (tcp, state, reader, rbuf) =
        tokio::time::timeout(connect_timeout, open)
            .await
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection within {connect_timeout:?}"),
                )
            })??;
    let (handle, shared) = Handle::new(state);
    // The SETTINGS ACK (and anything else the preface asked for) leaves first.
    shared.wake_io.notify_one();
    let ack_deadline = tokio::time::Instant::now() + connect_timeout;
    tokio::spawn(run(tcp, shared, reader, rbuf, ack_deadline));
    Ok(handle)
}

/// The connection's I/O until it closes (the server closed it, a protocol error, GOAWAY and
/// its last stream done, or no caller left); then its open calls fail.
async fn run(
    tcp: TcpStream,
    shared: Arc<Shared>,
    mut reader: Reader,
    mut rbuf: Vec<u8>,
    ack_deadline: tokio::time::Instant,
) {
    let mut io = Io {
        tcp,
        wbuf: Vec::with_capacity(16 * 1024),
        written: 0,
        wakers: Vec::new(),
    };
    let ended = io
        .serve(&shared, &mut reader, &mut rbuf, ack_deadline)
        .await;
    let code = match &ended {
        Ok(()) => Code::Unavailable,
        Err(ConnError::Io(_) | ConnError::Closed) => Code::Unknown,
        Err(_) => Code::Internal,
    };
    let mut state = shared.lock();
    state.closed = true;
    match &ended {
        Err(err @ (ConnError::Protocol { .. } | ConnError::Compression(_))) => {
            // Named once per connection: the target broke the protocol.
            tracing::warn!(cause = %err, "lean connection closed: the target broke HTTP/2");
            state.stats.cause = Some(err.to_string().into());
        }
        Err(err) => tracing::debug!(%err, "lean connection ended"),
        Ok(()) => match &state.stats.cause {
            Some(cause) => tracing::warn!(%cause, "lean connection closed by the target"),
            None => tracing::debug!("lean connection ended"),
        },
    }
    let goaway = match &ended {
        Ok(()) => Some(reason::NO_ERROR),
        Err(err) => err.goaway_code(),
    };
    if let Some(code) = goaway {
        // After whatever part of a frame is still unwritten, so that the GOAWAY is read as
        // one. Best effort: the connection is being dropped either way.
        io.wbuf.drain(..io.written);
        frame::put_goaway(&mut io.wbuf, 0, code);
        let _ = io.tcp.try_write(&io.wbuf);
    }
    state.fail_above(None, code);
    let wakers = std::mem::take(&mut state.to_wake);
    drop(state);
    wakers.into_iter().for_each(std::task::Waker::wake);
}

struct Io {
    tcp: TcpStream,
    /// Bytes taken from the state's queue; `written` of them are on the socket.
    wbuf: Vec<u8>,
    written: usize,
    wakers: Vec<std::task::Waker>,
}

impl Io {
    async fn serve(
        &mut self,
        shared: &Shared,
        reader: &mut Reader,
        rbuf: &mut Vec<u8>,
        ack_deadline: tokio::time::Instant,
    ) -> Result<(), ConnError> {
        let ack_timeout = tokio::time::sleep_until(ack_deadline);
        tokio::pin!(ack_timeout);
        // What came after the server's first SETTINGS in the opening's reads.
        self.apply(shared, reader, rbuf)?;
        loop {
            if self.written == self.wbuf.len() {
                let drained = self.take_queued(shared);
                if (drained || shared.abandoned()) && self.wbuf.is_empty() {
                    return Ok(());
                }
            }
            while self.written < self.wbuf.len() {
                match self.tcp.try_write(&self.wbuf[self.written..]) {
                    Ok(n) => self.written += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e.into()),
                }
            }
            let writing = self.written < self.wbuf.len();
            tokio::select! {
                biased;
                ready = self.tcp.readable() => {
                    ready?;
                    self.read(shared, reader, rbuf)?;
                }
                ready = self.tcp.writable(), if writing => ready?,
                () = shared.wake_io.notified(), if !writing => {}
                () = &mut ack_timeout, if !reader.settings_acked => {
                    return Err(ConnError::Protocol {
                        code: reason::SETTINGS_TIMEOUT,
                        what: "the target did not acknowledge our SETTINGS within the \
                               connect timeout"
                            .into(),
                    });
                }
            }
        }
    }

    /// Reads what the socket has and applies the complete frames.
    fn read(
        &mut self,
        shared: &Shared,
        reader: &mut Reader,
        rbuf: &mut Vec<u8>,
    ) -> Result<(), ConnError> {
        if rbuf.capacity() - rbuf.len() < HEAD_LEN {
            rbuf.reserve(READ_CHUNK);
        }
        match self.tcp.try_read_buf(rbuf) {
            Ok(0) => return Err(ConnError::Closed),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        self.apply(shared, reader, rbuf)
    }

    /// Applies the complete frames in `rbuf`. When acknowledgements reach their cap, they are
    /// written out before reading on: a server that sends PINGs or SETTINGS and does not take
    /// our acknowledgements is flooding (ENHANCE_YOUR_CALM).
    fn apply(
        &mut self,
        shared: &Shared,
        reader: &mut Reader,
        rbuf: &mut Vec<u8>,
    ) -> Result<(), ConnError> {
        loop {
            let mut state = shared.lock();
            let applied = reader.read(&mut state, rbuf);
            std::mem::swap(&mut state.to_wake, &mut self.wakers);
            let queued = state.out.len() + (self.wbuf.len() - self.written);
            state.stats.max_queued = state.stats.max_queued.max(queued);
            drop(state);
            self.wakers.drain(..).for_each(std::task::Waker::wake);
            let used = applied?;
            rbuf.drain(..used);
            if queued > MAX_QUEUED_BYTES {
                return Err(calm(format!(
                    "{queued} bytes queued for the target, over {MAX_QUEUED_BYTES}: it does \
                     not read"
                )));
            }
            let Some(kind) = reader.stalled.take() else {
                return Ok(());
            };
            if !self.flush(shared)? {
                let (what, cap) = match kind {
                    frame::kind::PING => ("PING", MAX_PENDING_PING_ACKS),
                    _ => ("SETTINGS", MAX_PENDING_SETTINGS_ACKS),
                };
                return Err(calm(format!(
                    "{what} flood: over {cap} acknowledgements unsent (the target sends \
                     {what} frames and does not read)"
                )));
            }
        }
    }

    /// Once the write buffer is all on the socket: takes what callers queued since (the
    /// acknowledgements among it no longer wait) into it, and says whether the connection is
    /// draining with no stream left open.
    fn take_queued(&mut self, shared: &Shared) -> bool {
        self.wbuf.clear();
        self.written = 0;
        let mut state = shared.lock();
        std::mem::swap(&mut state.out, &mut self.wbuf);
        state.acks.taken();
        state.draining && state.open_streams() == 0
    }

    /// Writes everything queued without waiting; whether all of it is on the socket.
    fn flush(&mut self, shared: &Shared) -> Result<bool, ConnError> {
        loop {
            if self.written == self.wbuf.len() {
                self.take_queued(shared);
                if self.wbuf.is_empty() {
                    return Ok(true);
                }
            }
            match self.tcp.try_write(&self.wbuf[self.written..]) {
                Ok(n) => self.written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

fn calm(what: String) -> ConnError {
    ConnError::Protocol {
        code: reason::ENHANCE_YOUR_CALM,
        what: what.into(),
    }
}
