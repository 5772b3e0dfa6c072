//! A worker's result in bounded messages: the worker sends its history and its time series as
//! [`pb::ResultPart`]s of at most [`HISTORY_PER_PART`] attempts and [`SERIES_PER_PART`] buckets
//! before the result itself ([`split`]); the coordinator puts them back ([`Assembly`]) while
//! counting them against what the worker's share can produce
//! ([`ShareBounds::max_report_bytes`]), and stops buffering the moment a worker sends more.
//!
//! Memory of the coordinator per worker: what [`Assembly`] buffers, at most
//! `max_report_bytes(share)` (a 1,000-user burst: under 1 MiB), plus the one message being
//! decoded: at most [`JOIN_MAX_MESSAGE_BYTES`] on the wire, which decodes to at most ~68 times
//! that in the worst case (empty series buckets: 2 bytes on the wire, 136 decoded), ~50 MiB
//! with the vector's growth, and freed before the next. The `cluster_trust` test
//! `an_oversized_report_does_not_grow_the_coordinator` floods a coordinator process with 10
//! times its share's bound and ten million empty buckets and holds its peak RSS within 128 MiB
//! of idle (measured: 15 MiB idle, 43 MiB peak; 174 MiB when the assembly does not stop).

use flashsale::pb;

use crate::cluster::verify::{ATTEMPT_WIRE_BYTES, Fault, ShareBounds, bucket_bytes};
use crate::engine::series::MAX_BUCKETS;

/// Largest message a worker may send up its Join stream: a part of [`HISTORY_PER_PART`]
/// attempts is at most 12,288 × 34 bytes (408 KiB), one of [`SERIES_PER_PART`] buckets at most
/// 32 × ~700 bins × 5 bytes (~110 KiB); the result itself holds counters and the latency
/// histogram (a few KiB, at most ~360 KiB).
pub const JOIN_MAX_MESSAGE_BYTES: usize = 512 * 1024;
/// Most history entries in one part.
pub const HISTORY_PER_PART: usize = 12 * 1024;
/// Most series buckets in one part.
pub const SERIES_PER_PART: usize = 32;

/// Takes the history and the series out of `result`'s stats and yields them as parts, in
/// order; `result` is then sent after them.
pub fn split(result: &mut pb::WorkerResult) -> Parts {
    let run_id = result.run_id;
    let Some(stats) = result.stats.as_mut() else {
        return Parts {
            run_id,
            ..Parts::default()
        };
    };
    Parts {
        run_id,
        user: std::mem::take(&mut stats.history_user),
        seq: std::mem::take(&mut stats.history_seq),
        quantity: std::mem::take(&mut stats.history_quantity),
        answer: std::mem::take(&mut stats.history_answer),
        order: std::mem::take(&mut stats.history_order),
        sent: std::mem::take(&mut stats.history_sent_us),
        replied: std::mem::take(&mut stats.history_replied_us),
        series: std::mem::take(&mut stats.series),
        history_at: 0,
        series_at: 0,
    }
}

/// The parts of one result, made one at a time (see [`split`]).
#[derive(Debug, Default)]
pub struct Parts {
    run_id: u64,
    user: Vec<u32>,
    seq: Vec<u32>,
    quantity: Vec<u32>,
    answer: Vec<u32>,
    order: Vec<u64>,
    sent: Vec<u32>,
    replied: Vec<u32>,
    series: Vec<pb::SeriesBucket>,
    history_at: usize,
    series_at: usize,
}

impl Iterator for Parts {
    type Item = pb::ResultPart;

    fn next(&mut self) -> Option<pb::ResultPart> {
        let n = self.user.len();
        let h = self.history_at..n.min(self.history_at + HISTORY_PER_PART);
        let s = self.series_at..self.series.len().min(self.series_at + SERIES_PER_PART);
        if h.is_empty() && s.is_empty() {
            return None;
        }
        let column = |c: &[u32]| c.get(h.clone()).map(<[u32]>::to_vec).unwrap_or_default();
        let part = pb::ResultPart {
            run_id: self.run_id,
            history_user: column(&self.user),
            history_seq: column(&self.seq),
            history_quantity: column(&self.quantity),
            history_answer: column(&self.answer),
            history_order: self
                .order
                .get(h.clone())
                .map(<[u64]>::to_vec)
                .unwrap_or_default(),
            history_sent_us: column(&self.sent),
            history_replied_us: column(&self.replied),
            series: self.series[s.clone()].to_vec(),
        };
        self.history_at = h.end;
        self.series_at = s.end;
        Some(part)
    }
}

/// A result being put back together on the coordinator, within its share's bounds.
#[derive(Debug)]
pub struct Assembly {
    history: pb::LoadStats,
    /// Decoded bytes buffered so far.
    bytes: u64,
    max_bytes: u64,
    max_attempts: u64,
}

impl Assembly {
    /// An empty assembly for a share with `bounds`.
    pub fn new(bounds: &ShareBounds) -> Self {
        Self {
            history: pb::LoadStats::default(),
            bytes: 0,
            max_bytes: bounds.max_report_bytes(),
            max_attempts: bounds.max_attempts_ever(),
        }
    }

    /// Decoded bytes buffered so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends `part`, or says why the share cannot have produced it (the caller then drops
    /// the assembly: nothing more is buffered for that worker).
    pub fn add(&mut self, part: pb::ResultPart) -> Result<(), Fault> {
        let n = part.history_user.len();
        let other = [
            part.history_seq.len(),
            part.history_quantity.len(),
            part.history_answer.len(),
            part.history_order.len(),
            part.history_sent_us.len(),
            part.history_replied_us.len(),
        ];
        if other.iter().any(|&len| len != n) {
            return Err(Fault::Columns { users: n, other });
        }
        let attempts = (self.history.history_user.len() as u64).saturating_add(n as u64);
        if attempts > self.max_attempts {
            return Err(Fault::TooManyAttempts {
                attempts,
                bound: self.max_attempts,
            });
        }
        let buckets = self.history.series.len().saturating_add(part.series.len());
        if buckets > MAX_BUCKETS {
            return Err(Fault::Series(format!(
                "{buckets} buckets sent; at most {MAX_BUCKETS}"
            )));
        }
        let bytes = self
            .bytes
            .saturating_add((n as u64).saturating_mul(ATTEMPT_WIRE_BYTES))
            .saturating_add(part.series.iter().map(bucket_bytes).sum::<u64>());
        if bytes > self.max_bytes {
            return Err(Fault::TooLarge {
                bytes,
                bound: self.max_bytes,
            });
        }
        self.bytes = bytes;
        let h = &mut self.history;
        h.history_user.extend(part.history_user);
        h.history_seq.extend(part.history_seq);
        h.history_quantity.extend(part.history_quantity);
        h.history_answer.extend(part.history_answer);
        h.history_order.extend(part.history_order);
        h.history_sent_us.extend(part.history_sent_us);
        h.history_replied_us.extend(part.history_replied_us);
        h.series.extend(part.series);
        Ok(())
    }

    /// Puts the parts into `result`'s stats, which must carry no history or series of its
    /// own when parts came.
    pub fn complete(self, result: &mut pb::WorkerResult) -> Result<(), Fault> {
        let h = self.history;
        if h.history_user.is_empty() && h.series.is_empty() {
            return Ok(());
        }
        let Some(stats) = result.stats.as_mut() else {
            return Err(Fault::NoStats);
        };
        if !stats.history_user.is_empty() || !stats.series.is_empty() {
            return Err(Fault::Series(
                "history or series both in parts and in the result".into(),
            ));
        }
        stats.history_user = h.history_user;
        stats.history_seq = h.history_seq;
        stats.history_quantity = h.history_quantity;
        stats.history_answer = h.history_answer;
        stats.history_order = h.history_order;
        stats.history_sent_us = h.history_sent_us;
        stats.history_replied_us = h.history_replied_us;
        stats.series = h.series;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{LoadSpec, Mode, Quantities};
    use prost::Message;
    use std::time::Duration;

    fn share(users: u32) -> LoadSpec {
        LoadSpec {
            mode: Mode::Safe,
            users,
            connections: 1,
            threads: 1,
            duration: None,
            quantity: Quantities::single(1),
            clicks: 1,
            round: 1,
            timeout: Duration::from_secs(1),
            user_prefix: "p-".into(),
            first_user: 0,
            retry: Default::default(),
            shape: crate::spec::Shape::default(),
        }
    }

    fn result(attempts: u32, buckets: usize) -> pb::WorkerResult {
        let stats = pb::LoadStats {
            attempts: u64::from(attempts),
            history_user: (0..attempts).collect(),
            history_seq: vec![0; attempts as usize],
            history_quantity: vec![u32::MAX; attempts as usize],
            history_answer: vec![4; attempts as usize],
            history_order: vec![u64::MAX; attempts as usize],
            history_sent_us: vec![u32::MAX; attempts as usize],
            history_replied_us: vec![u32::MAX; attempts as usize],
            series: (0..buckets)
                .map(|i| pb::SeriesBucket {
                    attempts: i as u64,
                    latency_bins: (0..700).collect(),
                    latency_counts: vec![u64::from(u32::MAX); 700],
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        pb::WorkerResult {
            run_id: 3,
            stats: Some(stats),
            ..Default::default()
        }
    }

    #[test]
    fn parts_fit_the_join_cap_and_reassemble() {
        let original = result(40_000, 70);
        let mut sent = original.clone();
        let parts: Vec<_> = split(&mut sent).collect();
        assert_eq!(parts.len(), 4);
        for part in &parts {
            assert!(
                part.encoded_len() <= JOIN_MAX_MESSAGE_BYTES,
                "{}",
                part.encoded_len()
            );
            assert_eq!(part.run_id, 3);
        }
        assert!(sent.encoded_len() <= JOIN_MAX_MESSAGE_BYTES);
        let mut assembly = Assembly::new(&ShareBounds::new(&share(40_000)));
        for part in parts {
            assembly.add(part).unwrap();
        }
        assembly.complete(&mut sent).unwrap();
        assert_eq!(sent, original);
    }

    #[test]
    fn an_assembly_stops_at_the_share_bound() {
        let mut sent = result(2_000, 0);
        let mut assembly = Assembly::new(&ShareBounds::new(&share(1_000)));
        let err = split(&mut sent)
            .try_for_each(|p| assembly.add(p))
            .unwrap_err();
        assert_eq!(err.kind(), "too_many_attempts");
        assert_eq!(assembly.bytes(), 0, "nothing past the bound is buffered");

        let mut assembly = Assembly::new(&ShareBounds::new(&share(1_000)));
        let empty = pb::ResultPart {
            series: vec![pb::SeriesBucket::default(); 400],
            ..Default::default()
        };
        assembly.add(empty.clone()).unwrap();
        assert_eq!(assembly.add(empty).unwrap_err().kind(), "series");

        let mut assembly = Assembly::new(&ShareBounds::new(&share(10)));
        let heavy = pb::ResultPart {
            series: result(0, 32).stats.unwrap().series,
            ..Default::default()
        };
        let mut added = 0;
        let err = loop {
            match assembly.add(heavy.clone()) {
                Ok(()) => added += 1,
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), "too_large");
        assert!(added < 19, "{added}");
        assert!(assembly.bytes() <= ShareBounds::new(&share(10)).max_report_bytes());

        let mut both = result(10, 0);
        let mut assembly = Assembly::new(&ShareBounds::new(&share(10)));
        assembly
            .add(split(&mut result(10, 0)).next().unwrap())
            .unwrap();
        assert!(assembly.complete(&mut both).is_err());
    }
}
