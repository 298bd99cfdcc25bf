//! `--unchoke-slots auto`: how many regular unchoke slots to open, sans-IO.
//!
//! [`AutoSlots`] decides at most once per [`CHOKE_INTERVAL`] (early rounds, run when a slot
//! frees up for a newcomer, keep the count) from
//! - what the uplink sent since its previous decision, measured from a running total of the
//!   bytes uploaded to the torrent's peers, those that left included (a sum of per-peer rate
//!   meters forgets what went to peers that left and lags the slots it is meant to judge);
//! - the upload rate to each peer that wants data (libtorrent's `rate_based_choker`
//!   thresholds);
//! - the uplink's capacity when known (`--max-upload-rate`).
//!
//! The rule, applied in this order at each decision (`c` current regular slots, `q` the peers
//! that meet their rate threshold, see [`qualifying`]):
//! 1. **Judge the last change** (a hill-climb). If the previous decision grew the slots, the
//!    peers it unchoked that did not help are given back: on a full uplink, those beyond the
//!    `n` that at the old rate per unchoked peer send what was sent (it overshot); otherwise
//!    those that take under [`AUTO_USEFUL_PERCENT`] of what the others take (they request
//!    little or nothing). That many slots are given back (never below the count before the
//!    growth), and the slots then do not grow for [`AUTO_RETRY_ROUNDS`] decisions. If it
//!    shrank them and the rate sent fell under [`AUTO_SHRINK_KEPT_PERCENT`] of what it was (the peers were taking all they could,
//!    not sharing a full uplink), the slots go back and are not shrunk for
//!    [`AUTO_SHRINK_RETRY_ROUNDS`] decisions.
//! 2. **Shrink toward `q + 1`** (libtorrent's count) when the slowest slots miss their
//!    threshold, i.e. `q + 1 < c`, and the uplink is full or its capacity unknown: halfway
//!    there, by one slot at least. With a known uplink that is not full, thin shares are not
//!    a reason to serve fewer peers.
//! 3. **Hold** when the uplink is known and full (at least [`AUTO_SATURATED_PERCENT`] used), or
//!    while growing again is not due.
//! 4. **Grow** while growing helps: with a known uplink not full, toward the count that fills
//!    it at the rate each unchoked peer took since the previous decision (capacity / (sent /
//!    peers unchoked)), by one slot at least and at most [`AUTO_MAX_GROWTH`] times over, so a
//!    known uplink is reached within a few decisions (growing by half, it took 40 s from 4
//!    to the 20 peers of 2.5 MB/s that fill 50 MB/s). After a growth was given back, and
//!    until one is kept whole, by half instead: the rate of the peers served does not tell
//!    whether more would take data. With an unknown one, when every slot
//!    qualifies (`q >= c`): by half while the slowest of them gets twice its threshold, else
//!    by one.
//!
//! The result is never fewer than [`AUTO_MIN_SLOTS`] (the classic 4, plus the optimistic
//! unchoke the choker adds) and never more than the peers that want data (or 4).

use std::time::Duration;

use super::choker::CHOKE_INTERVAL;

/// The fewest regular slots of `auto`: the classic design's four.
pub const AUTO_MIN_SLOTS: u32 = 4;
/// The upload rate the fastest peer must get to qualify for a slot (libtorrent's
/// `rate_based_choker`, 1 KiB/s).
pub const AUTO_RATE_THRESHOLD: u64 = 1024;
/// How much the threshold rises for each further slot (2 KiB/s). With a saturated uplink `U`
/// shared by `k` peers the `k`-th qualifies while `U / k >= 1 KiB/s + 2 KiB/s * (k - 1)`,
/// which settles near `sqrt(U / 2 KiB/s)` slots.
pub const AUTO_RATE_STEP: u64 = 2048;
/// With a known uplink: from this share of it sent the uplink counts as full (a rate-limited
/// uplink that is full measures 99-100%; at 90% the slots stopped where the uplink was just
/// 90% used).
pub const AUTO_SATURATED_PERCENT: u64 = 95;
/// A shrink is undone when the rate sent fell under this share of what it was before.
pub const AUTO_SHRINK_KEPT_PERCENT: u64 = 90;
/// With a known uplink not full, one decision grows the slots at most this many times over
/// (toward the count the measured rate per unchoked peer implies).
pub const AUTO_MAX_GROWTH: u32 = 2;
/// After a growth that did not fill the uplink, a newly unchoked peer helped when it takes at
/// least this share of the mean rate of the peers unchoked before (its 20 s meter counts the
/// seconds before its unchoke as nothing, so a fair share reads about half at first).
pub const AUTO_USEFUL_PERCENT: u64 = 25;
/// After a growth was given back, decisions (of [`CHOKE_INTERVAL`]) before growing again.
pub const AUTO_RETRY_ROUNDS: u32 = 3;
/// After a shrink was undone, decisions before shrinking again (5 minutes: a shrink that
/// costs rate is tried rarely).
pub const AUTO_SHRINK_RETRY_ROUNDS: u32 = 30;

/// What one decision of [`AutoSlots`] is made from.
#[derive(Clone, Copy, Debug)]
pub struct AutoRound<'a> {
    /// The time of the round.
    pub now: Duration,
    /// Bytes uploaded to the torrent's peers so far, those that left included (a running
    /// total the caller keeps), or `None` to judge by `rate_sum` instead.
    pub uploaded: Option<u64>,
    /// The sum of the connected peers' upload rates (bytes per second): what was sent, when
    /// `uploaded` is not kept.
    pub rate_sum: u64,
    /// Upload rates of the peers that want data, fastest first: at least the fastest
    /// `c + c / 2 + 1` of them (`c` the current slots), if there are that many.
    pub rates_desc: &'a [u64],
    /// How many peers want data.
    pub wanting: usize,
    /// How many peers held the regular slots since the previous decision (the optimistic
    /// unchoke, a random pick, is not judged).
    pub unchoked: usize,
    /// How many peers were unchoked beyond the regular slots (the optimistic unchoke, 0 or
    /// 1): what they took is part of what was sent.
    pub optimistic: usize,
    /// The uplink's capacity in bytes per second, when known.
    pub uplink: Option<u64>,
}

/// A change decided at the previous decision, judged at the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Change {
    /// Whether it grew the slots (else it shrank them).
    grew: bool,
    /// The slots before it.
    from: u32,
    /// Bytes per second sent before it.
    sent: u64,
    /// Peers unchoked before it, in regular slots.
    unchoked: usize,
    /// Peers unchoked before it beyond the regular slots (they took part of `sent`).
    optimistic: usize,
}

/// The state of `--unchoke-slots auto` between decisions (see the module's documentation).
#[derive(Clone, Debug)]
pub struct AutoSlots {
    slots: u32,
    /// Time and uploaded total of the previous decision.
    last: Option<(Duration, Option<u64>)>,
    change: Option<Change>,
    /// Decisions left before growing again.
    grow_hold: u32,
    /// Decisions left before shrinking again.
    shrink_hold: u32,
    /// A growth was given back since the last one kept whole: the peers' rate does not tell
    /// how many more would take data, so growing is by half again (a probe), not toward the
    /// uplink.
    probing: bool,
}

impl Default for AutoSlots {
    fn default() -> Self {
        Self::new()
    }
}

impl AutoSlots {
    /// [`AUTO_MIN_SLOTS`] slots, no decision made yet.
    pub fn new() -> Self {
        AutoSlots {
            slots: AUTO_MIN_SLOTS,
            last: None,
            change: None,
            grow_hold: 0,
            shrink_hold: 0,
            probing: false,
        }
    }

    /// The current regular slot count.
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// Whether a decision is due at `now`: none made yet, or [`CHOKE_INTERVAL`] since the
    /// previous one.
    pub fn due(&self, now: Duration) -> bool {
        self.last
            .map_or(true, |(at, _)| now.saturating_sub(at) >= CHOKE_INTERVAL)
    }

    /// Decides the slots for the coming interval when a decision is due (else keeps them) and
    /// returns them. The first decision only starts measuring.
    pub fn decide(&mut self, r: &AutoRound<'_>) -> u32 {
        if !self.due(r.now) {
            return self.slots;
        }
        let previous = self.last.replace((r.now, r.uploaded));
        let Some((at, before)) = previous else {
            return self.slots;
        };
        let sent = match (r.uploaded, before) {
            (Some(now_total), Some(then)) => {
                let secs = r.now.saturating_sub(at).as_secs_f64().max(1e-3);
                (now_total.saturating_sub(then) as f64 / secs) as u64
            }
            _ => r.rate_sum,
        };
        let (q, headroom) = qualifying(r.rates_desc);
        let mut next = self.slots;
        let (grow_hold, shrink_hold) = (self.grow_hold, self.shrink_hold);
        self.grow_hold = grow_hold.saturating_sub(1);
        self.shrink_hold = shrink_hold.saturating_sub(1);
        let mut undone = false;
        let full = r
            .uplink
            .map(|u| sent.saturating_mul(100) >= u.saturating_mul(AUTO_SATURATED_PERCENT));
        match self.change.take() {
            Some(g) if g.grew => {
                let full = full == Some(true);
                let now_unchoked = (r.unchoked, r.optimistic);
                let kept = kept_after_growth(g, next, sent, now_unchoked, r.rates_desc, full);
                if kept < next {
                    next = kept;
                    undone = true;
                    self.grow_hold = AUTO_RETRY_ROUNDS;
                }
                self.probing = undone;
            }
            Some(s)
                if sent.saturating_mul(100) < s.sent.saturating_mul(AUTO_SHRINK_KEPT_PERCENT) =>
            {
                next = s.from;
                undone = true;
                self.shrink_hold = AUTO_SHRINK_RETRY_ROUNDS;
            }
            _ => {}
        }
        let decided = if undone {
            next
        } else if q + 1 < next && full != Some(false) && shrink_hold == 0 {
            next - (next - (q + 1)).div_ceil(2)
        } else if full == Some(true) || grow_hold > 0 {
            next
        } else if let (Some(false), Some(uplink)) = (full, r.uplink) {
            if self.probing {
                next + (next / 2).max(1)
            } else {
                toward_uplink(next, sent, r.unchoked, r.optimistic, uplink)
            }
        } else if q >= next {
            next + if headroom { (next / 2).max(1) } else { 1 }
        } else {
            next
        };
        let ceiling = u32::try_from(r.wanting)
            .unwrap_or(u32::MAX)
            .max(AUTO_MIN_SLOTS);
        let decided = decided.clamp(AUTO_MIN_SLOTS, ceiling);
        if decided != next {
            self.change = Some(Change {
                grew: decided > next,
                from: next,
                sent,
                unchoked: r.unchoked,
                optimistic: r.optimistic,
            });
        }
        tracing::debug!(
            sent,
            q,
            unchoked = r.unchoked,
            wanting = r.wanting,
            from = self.slots,
            to = decided,
            undone,
            "auto unchoke slots decided"
        );
        self.slots = decided;
        decided
    }
}

/// The regular slots that would fill a known `uplink` that is not full: `sent` bytes per
/// second went to `unchoked` regular and `optimistic` other peers, so at that rate per peer
/// the uplink takes `uplink / (sent / (unchoked + optimistic))` peers, the optimistic ones
/// among them. At least one slot more than `slots`, at most [`AUTO_MAX_GROWTH`] times
/// `slots` (a rate measured while peers ramp up reads low and would overshoot; nothing sent
/// yet: the most).
fn toward_uplink(slots: u32, sent: u64, unchoked: usize, optimistic: usize, uplink: u64) -> u32 {
    let least = slots.saturating_add(1);
    let most = slots.saturating_mul(AUTO_MAX_GROWTH).max(least);
    let serving = (unchoked + optimistic) as u128;
    if sent == 0 || serving == 0 {
        return most;
    }
    let peers = (u128::from(uplink) * serving).div_ceil(u128::from(sent));
    let target = peers.saturating_sub(optimistic as u128);
    u32::try_from(target).unwrap_or(u32::MAX).clamp(least, most)
}

/// How many of `rates_desc` (fastest first) meet their threshold: the `i`-th (from 0) needs
/// [`AUTO_RATE_THRESHOLD`] + `i` * [`AUTO_RATE_STEP`]. Also whether every one of them gets
/// twice its threshold.
pub fn qualifying(rates_desc: &[u64]) -> (u32, bool) {
    let mut threshold = AUTO_RATE_THRESHOLD;
    let mut q = 0u32;
    let mut headroom = true;
    for &rate in rates_desc {
        if rate < threshold {
            break;
        }
        headroom &= rate >= 2 * threshold;
        q += 1;
        threshold += AUTO_RATE_STEP;
    }
    (q, headroom)
}

/// The slots worth keeping of a growth `g` to `slots`, now that `sent` bytes per second went
/// to `unchoked` regular and `optimistic` other peers, whose rates are `rates_desc` (fastest
/// first). Regular peers that did not help are given back, down to `g.from` at most:
/// - on a full uplink, those beyond the `n` peers that, at the rate per peer before the
///   growth (the optimistic ones counted), send what was sent (the growth overshot);
/// - otherwise, those taking less than [`AUTO_USEFUL_PERCENT`] of the mean rate of the
///   `g.unchoked` fastest (peers that request little or nothing).
///
/// A growth that unchoked nobody more is kept (nobody else wanted data).
fn kept_after_growth(
    g: Change,
    slots: u32,
    sent: u64,
    (unchoked, optimistic): (usize, usize),
    rates_desc: &[u64],
    full: bool,
) -> u32 {
    if unchoked <= g.unchoked {
        return slots;
    }
    let helped = if full {
        if g.sent == 0 {
            return slots;
        }
        let before = (g.unchoked + g.optimistic) as u128;
        let needed = (u128::from(sent) * before).div_ceil(u128::from(g.sent));
        usize::try_from(needed)
            .unwrap_or(usize::MAX)
            .saturating_sub(optimistic)
    } else {
        let top = &rates_desc[..g.unchoked.min(rates_desc.len())];
        let mean = top.iter().map(|&r| u128::from(r)).sum::<u128>() / top.len().max(1) as u128;
        rates_desc[..unchoked.min(rates_desc.len())]
            .iter()
            .filter(|&&r| {
                let r = u128::from(r) * 100;
                r > 0 && r >= mean * u128::from(AUTO_USEFUL_PERCENT)
            })
            .count()
    };
    let surplus = u32::try_from(unchoked.saturating_sub(helped)).unwrap_or(u32::MAX);
    slots
        .saturating_sub(surplus)
        .clamp(g.from.min(slots), slots)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: u64 = 1024;
    const M: u64 = 1_000_000;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// Drives one [`AutoSlots`] decision per 10 s with a known uploaded total.
    struct Rig {
        auto: AutoSlots,
        now: Duration,
        uploaded: u64,
        uplink: Option<u64>,
    }

    impl Rig {
        fn new(uplink: Option<u64>) -> Self {
            let mut auto = AutoSlots::new();
            auto.decide(&round(secs(0), Some(0), &[], 0, 0, uplink));
            Rig {
                auto,
                now: secs(0),
                uploaded: 0,
                uplink,
            }
        }

        /// The last 10 s sent `sent` bytes per second to the unchoked peers (slots) with
        /// `rates` (fastest first); `wanting` peers want data.
        fn step(&mut self, sent: u64, rates: &[u64], wanting: usize) -> u32 {
            let unchoked = (self.auto.slots() as usize).min(wanting);
            self.now += CHOKE_INTERVAL;
            self.uploaded += sent * 10;
            self.auto.decide(&round(
                self.now,
                Some(self.uploaded),
                rates,
                wanting,
                unchoked,
                self.uplink,
            ))
        }
    }

    fn round<'a>(
        now: Duration,
        uploaded: Option<u64>,
        rates: &'a [u64],
        wanting: usize,
        unchoked: usize,
        uplink: Option<u64>,
    ) -> AutoRound<'a> {
        AutoRound {
            now,
            uploaded,
            rate_sum: 0,
            rates_desc: rates,
            wanting,
            unchoked,
            optimistic: usize::from(wanting > unchoked),
            uplink,
        }
    }

    #[test]
    fn decides_once_per_interval_and_the_first_decision_only_measures() {
        let mut a = AutoSlots::new();
        let r = |t, up| round(secs(t), Some(up), &[], 100, 5, Some(10 * M));
        assert_eq!(a.decide(&r(0, 0)), 4);
        // Early rounds (a newcomer) within the interval keep the count, whatever they see.
        for t in 1..10 {
            assert!(!a.due(secs(t)));
            assert_eq!(a.decide(&r(t, 0)), 4);
        }
        // Ten seconds on, with the uplink idle: grow, by the most one decision may.
        assert!(a.due(secs(10)));
        assert_eq!(a.decide(&r(10, 0)), 4 * AUTO_MAX_GROWTH);
        assert_eq!(a.decide(&r(15, 0)), 4 * AUTO_MAX_GROWTH);
    }

    #[test]
    fn grows_toward_a_known_uplink_while_it_is_unsaturated_and_growing_helps() {
        // 10 MB/s uplink, every unchoked peer takes 100 kB/s: 100 fill it.
        let mut rig = Rig::new(Some(10 * M));
        let mut slots = vec![rig.auto.slots()];
        for _ in 0..6 {
            let sent = (rig.auto.slots() as u64 + 1) * 100_000;
            slots.push(rig.step(sent.min(10 * M), &[200_000; 200], 300));
        }
        // Doubling while the count that fills the uplink is further (4 + 1 peers send
        // 0.5 MB/s: 100 peers would fill it), then straight to it: 99 + the optimistic one.
        assert_eq!(slots, vec![4, 8, 16, 32, 64, 99, 99]);
        // Full: hold.
        for _ in 0..5 {
            assert_eq!(rig.step(9_500_000, &[200_000; 200], 300), 99);
        }
        // Close to full, by what the rate per peer says, not by half: 60 + 1 peers sending
        // 8.54 MB/s (140 kB/s each), 72 fill 10 MB/s.
        let mut rig = Rig::new(Some(10 * M));
        rig.auto.slots = 60;
        assert_eq!(rig.step(8_540_000, &[140_000; 200], 300), 71);
    }

    #[test]
    fn gives_back_the_slots_of_a_growth_that_did_not_help() {
        // 40 peers take 100 kB/s each; the other 260 are interested but request nothing (they
        // get their pieces elsewhere): unchoking them sends nothing more.
        let mut rig = Rig::new(Some(100 * M));
        let rates = |slots: u32| -> Vec<u64> {
            let mut v = vec![100_000; 40];
            v.resize((slots as usize * 2).max(40), 0);
            v
        };
        let sent = |slots: u32| (slots as u64 + 1).min(40) * 100_000;
        let mut history = Vec::new();
        for _ in 0..20 {
            let s = rig.auto.slots();
            history.push(rig.step(sent(s), &rates(s), 300));
        }
        // Doubles to 64 (the uplink is far), of which 40 send: 24 are given back.
        assert_eq!(&history[..5], &[8, 16, 32, 64, 40], "{history:?}");
        // Then it never ratchets: at most one probe of half again every fourth decision,
        // given back at the next.
        assert!(history[5..].iter().all(|&s| s <= 60), "{history:?}");
        let settled = history[5..].iter().filter(|&&s| s == 40).count();
        assert!(settled >= 11, "{history:?}");
        // A growth that sent nothing more at all goes back to where it started.
        let mut a = Rig::new(Some(100 * M));
        assert_eq!(a.step(500_000, &[100_000; 4], 300), 8);
        assert_eq!(a.step(500_000, &[100_000; 4], 300), 4);
        // And does not grow again for AUTO_RETRY_ROUNDS decisions, then only by half (a
        // probe: the rate per peer said 8 and was wrong).
        for _ in 0..AUTO_RETRY_ROUNDS {
            assert_eq!(a.step(500_000, &[100_000; 4], 300), 4);
        }
        assert_eq!(a.step(500_000, &[100_000; 4], 300), 6);
        // A probe kept whole (its peers took data) grows toward the uplink again.
        assert_eq!(a.step(700_000, &[100_000; 7], 300), 12);
    }

    #[test]
    fn fills_a_400_mbit_uplink_of_2_5_mb_s_peers_by_the_third_decision() {
        // benches/uplink-fill.sh: 32 leechers capped at 2.5 MB/s, 50 MB/s uplink; 20 fill it.
        let mut rig = Rig::new(Some(50 * M));
        let mut slots = Vec::new();
        for _ in 0..6 {
            let sent = ((rig.auto.slots() as u64 + 1) * 2_500_000).min(50 * M);
            slots.push(rig.step(sent, &[2_500_000; 32], 32));
        }
        // Doubling twice (5 then 9 peers say 20 fill it), then 19 + the optimistic one; the
        // growth that filled it is kept whole, the optimistic peer's share counted (judged
        // as 3 MB/s per regular peer, 17 would have seemed enough).
        assert_eq!(slots, vec![8, 16, 19, 19, 19, 19]);
    }

    #[test]
    fn a_growth_that_filled_the_uplink_keeps_only_what_filled_it() {
        // 20 peers of 2.5 MB/s fill 50 MB/s (400 Mbit/s): 14 unchoked send 35 MB/s.
        let mut rig = Rig::new(Some(50 * M));
        rig.auto.slots = 13;
        assert_eq!(rig.step(35 * M, &[2_500_000; 32], 32), 19);
        // 20 unchoked fill it: every slot of the growth helped; full, held.
        assert_eq!(rig.step(50 * M, &[2_500_000; 32], 32), 19);
        assert_eq!(rig.step(50 * M, &[2_500_000; 32], 32), 19);
        // Had the 20 been measured at 88% (still ramping up), they grow to the 23 peers
        // that at 2.2 MB/s fill 50 MB/s, then hold.
        let mut rig = Rig::new(Some(50 * M));
        rig.auto.slots = 19;
        assert_eq!(rig.step(44 * M, &[2_200_000; 32], 32), 22);
        for _ in 0..5 {
            assert_eq!(rig.step(50 * M, &[2_270_000; 32], 32), 22);
        }
        // A growth from there that overshot (by half, say): 29 share the 50 MB/s, which at
        // the 44 MB/s of 19 before 22 would send: 6 slots given back, then held.
        let mut rig = Rig::new(Some(50 * M));
        rig.auto.slots = 28;
        rig.auto.change = Some(Change {
            grew: true,
            from: 19,
            sent: 44 * M,
            unchoked: 19,
            optimistic: 1,
        });
        assert_eq!(rig.step(50 * M, &[1_724_000; 32], 32), 22);
        for _ in 0..5 {
            assert_eq!(rig.step(50 * M, &[2_270_000; 32], 32), 22);
        }
    }

    #[test]
    fn holds_on_a_full_uplink_while_the_slots_meet_their_thresholds() {
        let mut rig = Rig::new(Some(10 * M));
        rig.auto.slots = 40;
        // 41 peers share 9.5 MB/s (231 kB/s each, far above 1 + 2 * 40 KiB/s): hold.
        for _ in 0..5 {
            assert_eq!(rig.step(9_500_000, &[231_000; 100], 300), 40);
        }
    }

    #[test]
    fn shrinks_toward_q_plus_one_when_the_slowest_miss_their_threshold_on_a_full_uplink() {
        // A 1 Mbit/s origin (125 kB/s) spread over 181 peers: 0.7 kB/s each, under even the
        // first threshold except for a few faster ones. q = 3 (1, 3, 5 KiB/s met; the
        // fourth, at 6 KiB/s, misses 7): halfway toward q + 1 = 4 at each decision.
        let mut rig = Rig::new(Some(125_000));
        rig.auto.slots = 180;
        let mut rates = vec![40 * K, 20 * K, 10 * K, 6 * K];
        rates.resize(271, 700);
        let mut seen = Vec::new();
        for _ in 0..9 {
            seen.push(rig.step(125_000, &rates, 900));
        }
        assert_eq!(seen, vec![92, 48, 26, 15, 9, 6, 5, 4, 4]);
        // Without a known uplink too (libtorrent's rule).
        let mut rig = Rig::new(None);
        rig.auto.slots = 10;
        assert_eq!(rig.step(125_000, &rates, 900), 7);
        assert_eq!(rig.step(125_000, &rates, 900), 5);
        assert_eq!(rig.step(125_000, &rates, 900), 4);
        // One short of every slot qualifying (q + 1 = c): hold, as libtorrent would.
        let mut rig = Rig::new(None);
        rig.auto.slots = 5;
        rates[3] = 8 * K;
        assert_eq!(rig.step(125_000, &rates, 900), 5);
    }

    #[test]
    fn a_shrink_that_cost_rate_is_undone_and_not_tried_again_soon() {
        // 100 peers taking at most 100 kB/s each fill 10 MB/s, though the thresholds (1 + 2i
        // KiB/s) stop at 49: shrinking to 74 sends 7.5 MB/s, so the 99 come back and stay.
        let mut rig = Rig::new(Some(10 * M));
        rig.auto.slots = 99;
        let rates = [100_000; 149];
        assert_eq!(rig.step(10 * M, &rates, 300), 74);
        assert_eq!(rig.step(7_500_000, &rates, 300), 99);
        for _ in 0..AUTO_SHRINK_RETRY_ROUNDS {
            assert_eq!(rig.step(10 * M, &rates, 300), 99);
        }
        assert_eq!(rig.step(10 * M, &rates, 300), 74);
        // A shrink that keeps the uplink full (the peers were sharing it) is kept.
        assert_eq!(rig.step(10 * M, &[135_000; 112], 300), 70);
    }

    #[test]
    fn a_known_uplink_that_is_not_full_is_not_shrunk_for_thin_shares() {
        // 1 Gbit/s uplink, 300 peers of 48 kB/s (384 kbit/s): q is about 24, yet 100 slots
        // are only 4.8 MB/s of 125: keep growing while it helps, up to every peer.
        let mut rig = Rig::new(Some(125 * M));
        rig.auto.slots = 100;
        assert_eq!(rig.step(101 * 48_000, &[48_000; 200], 300), 200);
        assert_eq!(rig.step(201 * 48_000, &[48_000; 300], 300), 300);
    }

    #[test]
    fn without_a_known_uplink_grows_while_every_slot_qualifies() {
        let mut rig = Rig::new(None);
        // Everyone far above the thresholds (1, 3, 5, 7, 9 KiB/s...): grow by half.
        assert_eq!(rig.step(500 * K, &[100 * K; 7], 50), 6);
        // Every slot qualifies but the slowest of 9 read is within twice its threshold: one.
        let rates = [
            100 * K,
            90 * K,
            80 * K,
            70 * K,
            60 * K,
            50 * K,
            24 * K,
            0,
            0,
        ];
        assert_eq!(rig.step(700 * K, &rates, 50), 7);
        // Never more than the peers that want data, never fewer than four.
        let mut rig = Rig::new(None);
        rig.auto.slots = 8;
        assert_eq!(rig.step(900 * K, &[100 * K; 9], 9), 9);
        let mut rig = Rig::new(None);
        assert_eq!(rig.step(200 * K, &[100 * K; 2], 2), 4);
        // Nothing measured yet (a fresh swarm): the minimum.
        let mut rig = Rig::new(None);
        assert_eq!(rig.step(0, &[], 0), 4);
    }

    #[test]
    fn judges_by_the_rate_sum_without_an_uploaded_total() {
        let mut a = AutoSlots::new();
        let r = |t, sum| AutoRound {
            rate_sum: sum,
            ..round(secs(t), None, &[M; 7], 100, 5, Some(10 * M))
        };
        a.decide(&r(0, 0));
        assert_eq!(a.decide(&r(10, M)), 8);
        assert_eq!(a.decide(&r(20, 9_500_000)), 8);
    }

    #[test]
    fn qualifying_counts_the_peers_meeting_their_threshold() {
        assert_eq!(qualifying(&[]), (0, true));
        assert_eq!(qualifying(&[2 * K, 2 * K]), (1, true));
        assert_eq!(qualifying(&[10 * K, 6 * K, 5 * K, 5 * K]), (3, false));
        assert_eq!(qualifying(&[10 * K, 6 * K, 10 * K]), (3, true));
    }
}
