//! The missing-piece syndrome (Hajek and Zhu, "The missing piece syndrome in peer-to-peer
//! communication", IEEE Trans. Inf. Theory, 2011): with peers that leave on completion, a
//! swarm whose arrival rate exceeds the seed's upload rate (in files per second) is
//! unstable. One piece stays rare, and a club of peers missing only that piece grows without
//! bound. More pieces, rarest first, lingering and super-seeding delay or prevent it.
//!
//! The simulator counts the club at every timeline row ([`count_club`]); [`detect`] reads
//! the rows of each arrival phase and warns when the club holds most leechers and keeps
//! growing, or when the leechers pile up behind it.

use crate::swarm::Bitfield;

use super::report::{PhaseSummary, TimelineRow};

/// A club big enough to speak of: fewer peers are end-game noise.
pub const MIN_CLUB: u64 = 10;
/// Rows (10 s each) a phase needs before [`detect`] judges it: one minute.
pub const MIN_ROWS: usize = 6;

/// Peers missing exactly one piece, at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Club {
    /// Leechers missing exactly one piece, whichever.
    pub one_missing: u64,
    /// The most of them that miss the same piece: the club.
    pub size: u64,
    /// That piece (the smallest index on a tie).
    pub piece: Option<u32>,
}

/// The only piece `have` lacks, if it lacks exactly one.
pub fn only_missing(have: &Bitfield) -> Option<u32> {
    if have.len().checked_sub(have.count()) != Some(1) {
        return None;
    }
    let len = have.len();
    have.as_bytes().iter().enumerate().find_map(|(i, &byte)| {
        let bits_here = (len - i as u32 * 8).min(8);
        let expected = 0xFFu8 << (8 - bits_here);
        let missing = !byte & expected;
        (missing != 0).then(|| i as u32 * 8 + missing.leading_zeros())
    })
}

/// The club among the bitfields of the peers alive (seeds have none missing and do not
/// count).
pub fn count_club<'a>(haves: impl Iterator<Item = &'a Bitfield>) -> Club {
    let mut by_piece: std::collections::BTreeMap<u32, u64> = Default::default();
    let mut one_missing = 0;
    for piece in haves.filter_map(only_missing) {
        one_missing += 1;
        *by_piece.entry(piece).or_default() += 1;
    }
    let best = by_piece
        .iter()
        .fold(None, |best: Option<(u32, u64)>, (&piece, &n)| match best {
            Some((_, m)) if m >= n => best,
            _ => Some((piece, n)),
        });
    Club {
        one_missing,
        size: best.map_or(0, |(_, n)| n),
        piece: best.map(|(p, _)| p),
    }
}

/// What a warning is about (the JSON's machine-readable `kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WarningKind {
    /// A club of peers missing the same one piece grows, or holds the leechers back.
    MissingPieceSyndrome,
}

/// A warning about a run, in `sim`'s text and in its JSON's `warnings` array.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Warning {
    /// What it is about.
    pub kind: WarningKind,
    /// The arrival phase (1 = first) where it showed.
    pub phase: usize,
    /// Virtual time of the evidence, seconds.
    pub t_s: f64,
    /// Leechers missing only the rare piece then.
    pub club: u64,
    /// Leechers then.
    pub leechers: u64,
    /// The rare piece (a piece index, or a group index when pieces are grouped).
    pub piece: Option<u32>,
    /// The same in words.
    pub message: String,
}

/// Judges each arrival phase by its timeline rows (rows from its start to its end, or to the
/// end of the data when the run stopped early). A phase is flagged when, at its last row,
/// the club has at least [`MIN_CLUB`] peers and at least half the leechers, and since the
/// middle of the phase either the club grew (by a quarter and five peers) or the leechers
/// did (completions falling behind arrivals). Returns one warning, for the first flagged
/// phase.
pub fn detect(phases: &[PhaseSummary], timeline: &[TimelineRow]) -> Vec<Warning> {
    let grew = |late: u64, early: u64| late * 4 >= early * 5 + 20;
    for (i, phase) in phases.iter().enumerate() {
        let end = phase.start_s + phase.duration_s;
        let rows: Vec<&TimelineRow> = timeline
            .iter()
            .filter(|r| r.t_s >= phase.start_s && r.t_s <= end)
            .collect();
        if rows.len() < MIN_ROWS {
            continue;
        }
        let (last, mid) = (rows[rows.len() - 1], rows[rows.len() / 2]);
        let holds_most = last.club >= MIN_CLUB && last.club * 2 >= last.leechers;
        let club_grew = grew(last.club, mid.club);
        let leechers_grew = grew(last.leechers, mid.leechers);
        if holds_most && (club_grew || leechers_grew) {
            let how = if club_grew {
                format!("grew from {} at {:.0} s", mid.club, mid.t_s)
            } else {
                format!(
                    "holds back the leechers, up from {} at {:.0} s",
                    mid.leechers, mid.t_s
                )
            };
            let piece = last
                .club_piece
                .map_or(String::new(), |p| format!(" (piece {p})"));
            return vec![Warning {
                kind: WarningKind::MissingPieceSyndrome,
                phase: i + 1,
                t_s: last.t_s,
                club: last.club,
                leechers: last.leechers,
                piece: last.club_piece,
                message: format!(
                    "missing-piece syndrome in phase {}: at {:.0} s, {} of {} leechers miss \
                     only the same piece{piece}, and the club {how}. Arrivals outpace what \
                     the origin spreads of its rarest piece; the swarm does not recover. \
                     Lingering peers, more pieces, super-seeding or a bigger origin prevent it",
                    i + 1,
                    last.t_s,
                    last.club,
                    last.leechers
                ),
            }];
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(len: u32, missing: &[u32]) -> Bitfield {
        let mut b = Bitfield::full(len);
        for &m in missing {
            b.unset(m);
        }
        b
    }

    #[test]
    fn the_only_missing_piece_is_found_in_any_byte() {
        for len in [1, 4, 7, 8, 9, 62, 64, 65, 1000] {
            for m in 0..len {
                assert_eq!(only_missing(&bits(len, &[m])), Some(m), "len {len}");
            }
            assert_eq!(only_missing(&bits(len, &[])), None);
        }
        assert_eq!(only_missing(&bits(9, &[1, 8])), None);
        assert_eq!(only_missing(&Bitfield::new(1)), Some(0));
        assert_eq!(only_missing(&Bitfield::new(2)), None);
    }

    #[test]
    fn the_club_is_the_most_common_missing_piece() {
        let peers = [
            bits(4, &[3]),
            bits(4, &[3]),
            bits(4, &[1]),
            bits(4, &[0, 1]),
            bits(4, &[]),
            bits(4, &[3]),
        ];
        let c = count_club(peers.iter());
        assert_eq!(
            c,
            Club {
                one_missing: 4,
                size: 3,
                piece: Some(3)
            }
        );
        assert_eq!(count_club(std::iter::empty()), Club::default());
    }

    fn phase(start: f64, duration: f64) -> PhaseSummary {
        PhaseSummary {
            per_minute: 1.0,
            start_s: start,
            duration_s: duration,
            arrivals: 0,
            completions: 0,
            mean_s: None,
            p50_s: None,
            p95_s: None,
            max_s: None,
            origin_bytes: 0,
            share_ratio: 0.0,
        }
    }

    fn rows(series: impl Fn(u64) -> (u64, u64), n: u64) -> Vec<TimelineRow> {
        (0..n)
            .map(|i| {
                let (leechers, club) = series(i);
                TimelineRow {
                    t_s: i as f64 * 10.0,
                    leechers,
                    seeds: 0,
                    origin_utilisation: 1.0,
                    aggregate_bytes_per_s: 0.0,
                    club,
                    club_piece: Some(2),
                    origin_unchoked: 0,
                }
            })
            .collect()
    }

    #[test]
    fn a_growing_club_is_flagged_and_a_steady_swarm_is_not() {
        let phases = [phase(0.0, 600.0), phase(600.0, 600.0)];
        // The club grows by one peer a row from the second phase on, and holds most leechers.
        let growing = rows(|i| if i < 60 { (20, 2) } else { (30 + i, i - 40) }, 121);
        let w = detect(&phases, &growing);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].kind, WarningKind::MissingPieceSyndrome);
        assert_eq!((w[0].phase, w[0].club, w[0].leechers), (2, 80, 150));
        assert!(w[0].message.contains("missing-piece syndrome in phase 2"));
        assert_eq!(
            serde_json::to_value(&w[0]).unwrap()["kind"],
            "missing-piece-syndrome"
        );
        // Steady: 40 leechers, a club of 25 that does not grow: no warning.
        assert!(detect(&phases, &rows(|_| (40, 25), 121)).is_empty());
        // Growing leechers but a small club (a slow origin, no rare piece): no warning.
        assert!(detect(&phases, &rows(|i| (10 + i, 5), 121)).is_empty());
        // A club behind which the leechers pile up, itself steady in share: flagged.
        assert_eq!(
            detect(&phases, &rows(|i| (10 + 2 * i, 5 + i), 121)).len(),
            1
        );
        // Too short to judge.
        assert!(detect(&phases, &growing[..5]).is_empty());
    }
}
