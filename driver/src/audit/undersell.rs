//! Refusals judged at the moment they were made.
//!
//! Within a round the stock never rises and a customer's units never fall, so a refusal can be
//! proven wrong from what happened around it:
//!
//! - **a later reading**: a `GetStock` sent after a SOLD_OUT for `q` units arrived (or the final
//!   reading) still showed `>= q` units: there were at least as many when the refusal was made;
//! - **the requests before it**: even if every request sent before the refusal arrived had been
//!   sold (as far as the order book says they were sold at all), `>= q` units would remain of
//!   the initial stock (only with a book: without one, buyers the run does not know of may have
//!   taken stock);
//! - for LIMIT_REACHED, the same with the customer's own requests against the per-customer limit
//!   (and, with a book, the customer's final total).
//!
//! Times come from the history ([`Attempt::sent_us`], [`Attempt::replied_us`]) and the stock
//! polls, on one clock; `slack_us` widens every comparison for clocks that may disagree (the
//! processes of a distributed run). Unknown times only ever weaken the conclusions.

use std::collections::HashMap;

use serde::Serialize;

use crate::checkout::book::Book;
use crate::engine::history::{Answer, Attempt, AttemptKey, History, UNKNOWN_TIME};

/// A `GetStock` reading taken while or after the users ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// When the call was sent, in µs after the users' start.
    pub sent_us: u32,
    pub stock: i64,
}

/// What the audit knows besides the history.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The round's book (its orders from before the run skipped), when it was read.
    pub book: Option<(&'a Book, usize)>,
    pub initial_stock: i64,
    /// The reading after the run, taken after every answer.
    pub final_stock: i64,
    /// Stock readings during the run.
    pub readings: &'a [Reading],
    /// The per-customer limit; 0: none declared.
    pub per_user_limit: u32,
    /// How far apart two clocks of the run may be.
    pub slack_us: u32,
}

/// Why a refusal was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Proof {
    /// A reading sent `after_us` after the refusal arrived showed `stock` units.
    LaterReading { after_us: u64, stock: i64 },
    /// The final reading showed `stock` units.
    FinalStock { stock: i64 },
    /// At most `sold` units could have been sold when it was made, of `initial`.
    SentBefore { sold: i64, initial: i64 },
    /// The customer could have held at most `held` units with the limit `limit`.
    BelowLimit { held: u64, limit: u32 },
    /// The checkout declares no per-customer limit.
    NoLimit,
}

/// One wrong refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WrongRefusal {
    pub user: u32,
    pub seq: u32,
    pub quantity: u32,
    /// `sold_out` or `limit_reached`.
    pub limit: bool,
    /// When it arrived, in µs after the users' start (`None`: not known).
    pub at_us: Option<u32>,
    pub proof: Proof,
}

impl WrongRefusal {
    /// In words, for the check's detail.
    pub fn describe(&self) -> String {
        let told = if self.limit {
            "limit reached"
        } else {
            "sold out"
        };
        let when = self.at_us.map_or(String::new(), |us| {
            format!(" {:.3} s into the run", f64::from(us) / 1e6)
        });
        let why = match self.proof {
            Proof::LaterReading { after_us, stock } => format!(
                "GetStock sent {:.3} s later still read {stock} units",
                after_us as f64 / 1e6
            ),
            Proof::FinalStock { stock } => format!("the final stock is {stock}"),
            Proof::SentBefore { sold, initial } => format!(
                "at most {sold} of the {initial} units could have been sold by then (every request sent before it counted)"
            ),
            Proof::BelowLimit { held, limit } => format!(
                "the customer could have held at most {held} units then, below the limit of {limit}"
            ),
            Proof::NoLimit => "the checkout declares no per-customer limit".into(),
        };
        format!(
            "user {} (request {}) asked for {} units and was told {told}{when}, but {why}",
            self.user, self.seq, self.quantity
        )
    }
}

/// The wrong refusals of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Refusals {
    /// SOLD_OUT answers given while the units asked for were left.
    pub wrong_sold_out: u64,
    /// LIMIT_REACHED answers given while the customer was below the limit.
    pub wrong_limit: u64,
    /// The earliest wrong SOLD_OUT and its proof.
    pub earliest_sold_out: Option<WrongRefusal>,
    /// The earliest wrong LIMIT_REACHED and its proof.
    pub earliest_limit: Option<WrongRefusal>,
}

/// Judges every refusal of `history`.
pub fn judge(history: &History, ctx: &Context<'_>) -> Refusals {
    let held = Held::new(history, ctx.book);
    let sent = SentBefore::new(history.attempts.iter().map(|a| (a.sent_us, held.units(a))));
    let later = LaterMax::new(ctx.readings);
    let per_user = PerUser::new(history, &held);
    let mut out = Refusals::default();
    for a in &history.attempts {
        let limit = match a.answer {
            Answer::SoldOut => false,
            Answer::LimitReached => true,
            _ => continue,
        };
        let proof = if limit {
            per_user.wrong_limit(a, ctx, &held, history)
        } else {
            wrong_sold_out(a, ctx, &held, &sent, &later)
        };
        let Some(proof) = proof else { continue };
        let wrong = WrongRefusal {
            user: a.key.user,
            seq: a.key.seq,
            quantity: a.quantity,
            limit,
            at_us: (a.replied_us != UNKNOWN_TIME).then_some(a.replied_us),
            proof,
        };
        let (count, earliest) = if limit {
            (&mut out.wrong_limit, &mut out.earliest_limit)
        } else {
            (&mut out.wrong_sold_out, &mut out.earliest_sold_out)
        };
        *count += 1;
        if earliest.is_none_or(|e| e.at_us.unwrap_or(u32::MAX) > wrong.at_us.unwrap_or(u32::MAX)) {
            *earliest = Some(wrong);
        }
    }
    out
}

fn wrong_sold_out(
    a: &Attempt,
    ctx: &Context<'_>,
    held: &Held,
    sent: &SentBefore,
    later: &LaterMax,
) -> Option<Proof> {
    let q = i64::from(a.quantity);
    let after = a.replied_us.saturating_add(ctx.slack_us);
    if a.replied_us != UNKNOWN_TIME
        && let Some(reading) = later.max_from(after)
        && reading.stock >= q
    {
        return Some(Proof::LaterReading {
            after_us: u64::from(reading.sent_us.saturating_sub(a.replied_us)),
            stock: reading.stock,
        });
    }
    if ctx.final_stock >= q {
        return Some(Proof::FinalStock {
            stock: ctx.final_stock,
        });
    }
    // Without a book, buyers this run does not know of may have taken stock: only the book
    // accounts for every unit.
    held.booked.as_ref()?;
    // Units this request itself took (a phantom sale, booked though refused) count as sold:
    // `no_phantom_sales` names that fault, not this check.
    let sold = held.unattributed.saturating_add(sent.units_before(after));
    let sold = i64::try_from(sold).unwrap_or(i64::MAX);
    (ctx.initial_stock.saturating_sub(sold) >= q).then_some(Proof::SentBefore {
        sold,
        initial: ctx.initial_stock,
    })
}

/// Which attempts took stock, and how much: per the book when there is one (units booked
/// under each request id; orders of nobody's request are `unattributed`), else every attempt
/// its full quantity.
struct Held {
    booked: Option<HashMap<AttemptKey, u64>>,
    unattributed: u64,
    /// Unattributed units per customer.
    unattributed_by_user: HashMap<u32, u64>,
}

impl Held {
    fn new(history: &History, book: Option<(&Book, usize)>) -> Self {
        let Some((book, preexisting)) = book else {
            return Self {
                booked: None,
                unattributed: 0,
                unattributed_by_user: HashMap::new(),
            };
        };
        let sent: std::collections::HashSet<AttemptKey> =
            history.attempts.iter().map(|a| a.key).collect();
        let mut booked: HashMap<AttemptKey, u64> = HashMap::new();
        let (mut unattributed, mut by_user) = (0u64, HashMap::<u32, u64>::new());
        for entry in book.entries.iter().skip(preexisting) {
            let units = u64::from(entry.quantity);
            match entry.request.filter(|k| sent.contains(k)) {
                Some(key) => *booked.entry(key).or_default() += units,
                None => {
                    unattributed = unattributed.saturating_add(units);
                    if let Some(user) = entry.user.or(entry.request.map(|k| k.user)) {
                        *by_user.entry(user).or_default() += units;
                    }
                }
            }
        }
        Self {
            booked: Some(booked),
            unattributed,
            unattributed_by_user: by_user,
        }
    }

    /// Units attempt `a` may have taken.
    fn units(&self, a: &Attempt) -> u64 {
        match &self.booked {
            Some(booked) => booked.get(&a.key).copied().unwrap_or(0),
            None => u64::from(a.quantity),
        }
    }
}

/// Units taken by the attempts sent before an instant: prefix sums over the send times.
struct SentBefore {
    times: Vec<u32>,
    sums: Vec<u64>,
}

impl SentBefore {
    fn new(attempts: impl Iterator<Item = (u32, u64)>) -> Self {
        let mut all: Vec<(u32, u64)> = attempts.collect();
        all.sort_unstable_by_key(|&(t, _)| t);
        let mut sum = 0u64;
        let sums = all
            .iter()
            .map(|&(_, u)| {
                sum = sum.saturating_add(u);
                sum
            })
            .collect();
        Self {
            times: all.into_iter().map(|(t, _)| t).collect(),
            sums,
        }
    }

    /// Units of the attempts sent at or before `at`.
    fn units_before(&self, at: u32) -> u64 {
        match self.times.partition_point(|&t| t <= at) {
            0 => 0,
            n => self.sums[n - 1],
        }
    }
}

/// The highest reading sent at or after an instant.
struct LaterMax {
    /// Send times, in order.
    times: Vec<u32>,
    /// For each position, the highest reading of it and every later one.
    best: Vec<Reading>,
}

impl LaterMax {
    fn new(readings: &[Reading]) -> Self {
        let mut readings = readings.to_vec();
        readings.sort_unstable_by_key(|r| r.sent_us);
        let times = readings.iter().map(|r| r.sent_us).collect();
        let mut best = readings;
        for i in (0..best.len().saturating_sub(1)).rev() {
            if best[i + 1].stock >= best[i].stock {
                best[i] = best[i + 1];
            }
        }
        Self { times, best }
    }

    fn max_from(&self, at: u32) -> Option<Reading> {
        let i = self.times.partition_point(|&t| t < at);
        self.best.get(i).copied()
    }
}

/// Each customer's attempts by send time, for the limit.
struct PerUser {
    attempts: HashMap<u32, SentBefore>,
    /// Units the book credits to each customer in all (with a book).
    totals: Option<HashMap<u32, u64>>,
}

impl PerUser {
    fn new(history: &History, held: &Held) -> Self {
        let mut by_user: HashMap<u32, Vec<(u32, u64)>> = HashMap::new();
        let limited = history
            .attempts
            .iter()
            .filter(|a| a.answer == Answer::LimitReached)
            .map(|a| a.key.user)
            .collect::<std::collections::HashSet<u32>>();
        for a in history
            .attempts
            .iter()
            .filter(|a| limited.contains(&a.key.user))
        {
            by_user
                .entry(a.key.user)
                .or_default()
                .push((a.sent_us, held.units(a)));
        }
        let totals = held.booked.as_ref().map(|booked| {
            let mut totals = held.unattributed_by_user.clone();
            for (key, units) in booked {
                *totals.entry(key.user).or_default() += units;
            }
            totals
        });
        Self {
            attempts: by_user
                .into_iter()
                .map(|(u, v)| (u, SentBefore::new(v.into_iter())))
                .collect(),
            totals,
        }
    }

    fn wrong_limit(
        &self,
        a: &Attempt,
        ctx: &Context<'_>,
        held: &Held,
        unreported: &History,
    ) -> Option<Proof> {
        let limit = ctx.per_user_limit;
        if limit == 0 {
            return Some(Proof::NoLimit);
        }
        let user = a.key.user;
        let q = u64::from(a.quantity);
        // Without a book every request counts its full quantity, this refusal's too, though
        // it took nothing; with one, units booked under it are a phantom sale and stay.
        let own = if self.totals.is_some() {
            0
        } else {
            held.units(a)
        };
        let unattributed = held.unattributed_by_user.get(&user).copied().unwrap_or(0);
        // A customer's units only grow: the final total bounds what they held at any time.
        if let Some(totals) = &self.totals {
            let total = totals.get(&user).copied().unwrap_or(0).saturating_sub(own);
            if total.saturating_add(q) <= u64::from(limit) {
                return Some(Proof::BelowLimit { held: total, limit });
            }
        }
        if self.totals.is_none() && unreported.is_unreported(user) {
            // Some of this customer's requests were never reported.
            return None;
        }
        let after = a.replied_us.saturating_add(ctx.slack_us);
        let before = self
            .attempts
            .get(&user)
            .map_or(0, |s| s.units_before(after))
            .saturating_add(unattributed)
            .saturating_sub(own);
        (before.saturating_add(q) <= u64::from(limit)).then_some(Proof::BelowLimit {
            held: before,
            limit,
        })
    }
}

#[cfg(test)]
mod tests;
