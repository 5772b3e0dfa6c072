//! One connection's shared state: the frames queued for the socket, the streams in flight
//! (a slab of slots found by stream id through a multiplicative hash), the peer's settings and
//! our send windows. The I/O task and the callers take turns under one uncontended mutex.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::task::{Poll, Waker};

use tonic::Code;

use super::frame::{self, DEFAULT_MAX_FRAME, DEFAULT_WINDOW, reason};
use super::limits::{Acks, Stats};
pub use super::shared::{Handle, Shared};

/// Hashes a stream id by one multiplication (Fibonacci hashing): ids are small odd numbers.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u32(&mut self, id: u32) {
        self.0 = u64::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Largest client stream id (RFC 9113 §5.1.1): past it, the connection takes no new stream.
const LAST_STREAM_ID: u32 = (1 << 31) - 1;

/// One stream in flight, or a free slot.
#[derive(Default)]
pub struct Slot {
    pub id: u32,
    waker: Option<Waker>,
    /// How the call ended; the slot is the caller's until it takes this.
    done: Option<Result<(), Code>>,
    /// The response headers came (200, no `grpc-status`): DATA and trailers may follow.
    pub headers_seen: bool,
    /// The reply's DATA so far (at most `MAX_REPLY_BYTES`: past it, the stream is reset).
    pub reply: Vec<u8>,
    pub send_window: i64,
    pub recv_window: i64,
    /// Request DATA still waiting for send window (at most the caller's one request).
    pending: Vec<u8>,
    /// The server never processed the stream (REFUSED_STREAM, or above a GOAWAY's last
    /// stream id): the call may be retried.
    unprocessed: bool,
}

/// Why a call cannot start on this connection.
pub enum Refused {
    /// MAX_CONCURRENT_STREAMS are open: wait.
    Full,
    /// The connection is gone or takes no new streams: dial another.
    Gone,
    /// The request's header list is over the server's SETTINGS_MAX_HEADER_LIST_SIZE.
    TooLarge,
}

pub struct State {
    /// Frames queued for the socket: with what the I/O task is still writing, at most
    /// `limits::MAX_QUEUED_BYTES` once the server sends anything (the connection is closed
    /// with ENHANCE_YOUR_CALM past it).
    pub out: Vec<u8>,
    /// One per call in flight or finished and not yet taken: at most the callers' count.
    slots: Vec<Slot>,
    free: Vec<u32>,
    ids: HashMap<u32, u32, BuildHasherDefault<IdHasher>>,
    next_id: u32,
    pub max_concurrent: usize,
    pub peer_initial_window: i64,
    pub conn_send_window: i64,
    pub max_frame: usize,
    /// The server's SETTINGS_MAX_HEADER_LIST_SIZE (unlimited until it says).
    pub peer_max_header_list: u32,
    /// Streams (slot, id) whose DATA waits for window, in order (at most one per slot).
    blocked: VecDeque<(u32, u32)>,
    /// Callers waiting for a stream below MAX_CONCURRENT_STREAMS: one entry per poll of a
    /// waiting caller, who is polled again once woken (about one per waiting caller).
    waiters: VecDeque<Waker>,
    /// The connection is closed; its calls failed.
    pub closed: bool,
    /// GOAWAY came, or the stream ids ran out: no new streams.
    pub draining: bool,
    /// Wakers to wake once the lock is released.
    pub to_wake: Vec<Waker>,
    /// The PING and SETTINGS acknowledgements not yet on the socket (bounded).
    pub acks: Acks,
    /// What the connection saw that the run's logs should name.
    pub stats: Stats,
}

impl Default for State {
    fn default() -> Self {
        Self {
            out: Vec::with_capacity(16 * 1024),
            slots: Vec::new(),
            free: Vec::new(),
            ids: HashMap::default(),
            next_id: 1,
            max_concurrent: usize::MAX,
            peer_initial_window: DEFAULT_WINDOW,
            conn_send_window: DEFAULT_WINDOW,
            max_frame: DEFAULT_MAX_FRAME as usize,
            peer_max_header_list: u32::MAX,
            blocked: VecDeque::new(),
            waiters: VecDeque::new(),
            closed: false,
            draining: false,
            to_wake: Vec::new(),
            acks: Acks::default(),
            stats: Stats::default(),
        }
    }
}

impl State {
    /// Streams open (counted against MAX_CONCURRENT_STREAMS).
    pub fn open_streams(&self) -> usize {
        self.ids.len()
    }

    /// Opens a stream sending `block` (a header list of `list_size` bytes) and `body` (which
    /// ends it); `(slot, id)`, or why not. When full, `waker` is woken as a stream closes.
    pub fn open(
        &mut self,
        (block, list_size): (&[u8], u32),
        body: &[u8],
        waker: &Waker,
    ) -> Result<(u32, u32), Refused> {
        if self.closed || self.draining {
            return Err(Refused::Gone);
        }
        if list_size > self.peer_max_header_list {
            return Err(Refused::TooLarge);
        }
        if self.ids.len() >= self.max_concurrent {
            self.waiters.push_back(waker.clone());
            return Err(Refused::Full);
        }
        let id = self.next_id;
        self.next_id = match id.checked_add(2).filter(|&n| n <= LAST_STREAM_ID) {
            Some(next) => next,
            None => {
                self.draining = true;
                id
            }
        };
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(Slot::default());
                u32::try_from(self.slots.len() - 1).map_err(|_| Refused::Gone)?
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.id = id;
        slot.done = None;
        slot.waker = None;
        slot.headers_seen = false;
        slot.reply.clear();
        slot.pending.clear();
        slot.unprocessed = false;
        slot.send_window = self.peer_initial_window;
        slot.recv_window = i64::from(super::STREAM_WINDOW);
        self.ids.insert(id, index);
        frame::put_headers(&mut self.out, id, block, self.max_frame);
        let now = self.sendable(index, body.len());
        frame::put_data(
            &mut self.out,
            id,
            &body[..now],
            self.max_frame,
            now == body.len(),
        );
        if now < body.len() {
            self.slots[index as usize]
                .pending
                .extend_from_slice(&body[now..]);
            self.blocked.push_back((index, id));
        }
        Ok((index, id))
    }

    /// How many of `want` bytes the windows let stream `index` send now (taken from them).
    fn sendable(&mut self, index: u32, want: usize) -> usize {
        let slot = &mut self.slots[index as usize];
        let allowed = slot.send_window.min(self.conn_send_window).max(0);
        let now = usize::try_from(allowed).unwrap_or(usize::MAX).min(want);
        // `now` fits in both windows, themselves at most 2^31 - 1.
        slot.send_window -= now as i64;
        self.conn_send_window -= now as i64;
        now
    }

    /// Sends what the windows now allow of the blocked streams' DATA, in order.
    pub fn pump(&mut self) {
        while let Some(&(index, id)) = self.blocked.front() {
            if self.slots[index as usize].id != id || self.slots[index as usize].done.is_some() {
                self.blocked.pop_front();
                continue;
            }
            let want = self.slots[index as usize].pending.len();
            let now = self.sendable(index, want);
            if now == 0 {
                return;
            }
            let slot = &mut self.slots[index as usize];
            let end = now == want;
            frame::put_data(&mut self.out, id, &slot.pending[..now], self.max_frame, end);
            slot.pending.drain(..now);
            if !end {
                return;
            }
            self.blocked.pop_front();
        }
    }

    /// The slot of open stream `id`.
    pub fn slot_of(&mut self, id: u32) -> Option<(u32, &mut Slot)> {
        let index = *self.ids.get(&id)?;
        Some((index, &mut self.slots[index as usize]))
    }

    /// Whether `id` was opened by us (it may be closed since).
    pub fn was_opened(&self, id: u32) -> bool {
        id % 2 == 1 && id < self.next_id || self.draining && id == self.next_id
    }

    /// Ends stream `id` with `result`; resets it (`reset` code) when the peer has not closed
    /// it. The stream's slot waits for its caller.
    pub fn finish(&mut self, id: u32, result: Result<(), Code>, reset: Option<u32>) {
        let Some(index) = self.ids.remove(&id) else {
            return;
        };
        let slot = &mut self.slots[index as usize];
        // Request DATA still unsent (the server answered before reading it all): the server's
        // side of the stream would stay open without our END_STREAM.
        let unsent = !slot.pending.is_empty();
        slot.pending.clear();
        if let Some(code) = reset.or(unsent.then_some(reason::CANCEL)) {
            frame::put_rst_stream(&mut self.out, id, code);
        }
        let slot = &mut self.slots[index as usize];
        slot.done = Some(result);
        if let Some(waker) = slot.waker.take() {
            self.to_wake.push(waker);
        }
        self.wake_a_waiter();
    }

    fn wake_a_waiter(&mut self) {
        if let Some(waker) = self.waiters.pop_front() {
            self.to_wake.push(waker);
        }
    }

    /// Wakes every caller waiting for a stream (the limit changed).
    pub fn wake_waiters(&mut self) {
        self.to_wake.extend(self.waiters.drain(..));
    }

    /// Passes a wake-up on: a waiter that was woken went away without opening a stream.
    pub fn pass_on(&mut self) {
        self.wake_a_waiter();
    }

    /// Ends stream `id`, which the server never processed (REFUSED_STREAM): UNAVAILABLE,
    /// and its call may be retried.
    pub fn refuse(&mut self, id: u32) {
        if let Some((_, slot)) = self.slot_of(id) {
            slot.unprocessed = true;
            self.stats.unprocessed += 1;
        }
        self.finish(id, Err(Code::Unavailable), None);
    }

    /// Ends every open stream above a GOAWAY's `last` stream id: never processed.
    pub fn refuse_above(&mut self, last: u32) {
        let ids: Vec<u32> = self.ids.keys().copied().filter(|&id| id > last).collect();
        for id in ids {
            self.refuse(id);
        }
        self.to_wake.extend(self.waiters.drain(..));
    }

    /// Ends every open stream whose id is above `last` (a GOAWAY's last stream id) with
    /// `code`, or every one when `last` is `None`.
    pub fn fail_above(&mut self, last: Option<u32>, code: Code) {
        let ids: Vec<u32> = self
            .ids
            .keys()
            .copied()
            .filter(|&id| last.is_none_or(|last| id > last))
            .collect();
        for id in ids {
            self.finish(id, Err(code), None);
        }
        self.to_wake.extend(self.waiters.drain(..));
    }

    /// The outcome of the call in `index` once it has one, and whether the server never
    /// processed its stream; its reply's bytes are swapped into `reply` and the slot is freed.
    pub fn poll_done(
        &mut self,
        index: u32,
        waker: &Waker,
        reply: &mut Vec<u8>,
    ) -> Poll<(Result<(), Code>, bool)> {
        let slot = &mut self.slots[index as usize];
        let Some(done) = slot.done.take() else {
            match &mut slot.waker {
                Some(w) if w.will_wake(waker) => {}
                w => *w = Some(waker.clone()),
            }
            return Poll::Pending;
        };
        std::mem::swap(&mut slot.reply, reply);
        slot.id = 0;
        let unprocessed = slot.unprocessed;
        self.free.push(index);
        Poll::Ready((done, unprocessed))
    }

    /// The caller of the call in `(index, id)` went away: the stream is cancelled if still
    /// open, and the slot freed.
    pub fn abandon(&mut self, index: u32, id: u32) {
        if self.slots.get(index as usize).is_none_or(|s| s.id != id) {
            return;
        }
        if self.ids.contains_key(&id) && !self.closed {
            self.finish(id, Err(Code::Cancelled), Some(reason::CANCEL));
        }
        let slot = &mut self.slots[index as usize];
        slot.id = 0;
        slot.done = None;
        slot.waker = None;
        self.free.push(index);
    }
}

impl State {
    /// SETTINGS_INITIAL_WINDOW_SIZE changed by `delta`: every open stream's send window
    /// moves with it (RFC 9113 §6.9.2).
    pub fn adjust_stream_windows(&mut self, delta: i64) -> Result<(), super::reader::ConnError> {
        for &index in self.ids.values() {
            let slot = &mut self.slots[index as usize];
            slot.send_window += delta;
            if slot.send_window > frame::MAX_WINDOW {
                return Err(super::reader::ConnError::Protocol {
                    code: reason::FLOW_CONTROL_ERROR,
                    what: "SETTINGS_INITIAL_WINDOW_SIZE overflows a stream's window".into(),
                });
            }
        }
        Ok(())
    }
}
