//! Capacity planning by bisection over simulations (`seedbox plan`): the smallest origin
//! uplink that keeps the 95th percentile download time of every phase under a target.

use std::time::Duration;

use super::config::{SimConfig, SimError};
use super::report::Report;

/// The answer for one delivery mode.
#[derive(Clone, Debug)]
pub struct Sized {
    /// Smallest origin uplink found that meets the target, bytes per second.
    pub uplink: u64,
    /// The run at that uplink.
    pub report: Report,
    /// Simulations run.
    pub runs: u32,
}

/// Whether a run meets the target: nobody left unfinished, and in every phase the p95
/// download time is at most `target`.
pub fn meets(r: &Report, target: Duration) -> bool {
    let t = target.as_secs_f64();
    !r.aborted
        && r.unfinished == 0
        && r.phases
            .iter()
            .all(|p| p.completions == 0 || p.p95_s.is_some_and(|x| x <= t))
}

/// Finds by bisection the smallest `seed_up` (to within 2%) for which `base` meets
/// `target`, calling `run` for each simulation (so the caller can show progress).
pub fn smallest_uplink(
    base: &SimConfig,
    target: Duration,
    run: &mut dyn FnMut(&SimConfig) -> Result<Report, SimError>,
) -> Result<Sized, SimError> {
    let mut cfg = base.clone();
    cfg.abort_after = Some(target);
    let mut runs = 0;
    let mut try_at = |up: u64, runs: &mut u32| -> Result<(bool, Report), SimError> {
        cfg.seed_up = up.max(1);
        *runs += 1;
        let r = run(&cfg)?;
        Ok((meets(&r, target), r))
    };
    // The peak demand: size times the highest arrival rate.
    let peak = base
        .arrivals
        .iter()
        .map(|p| p.per_second)
        .fold(0.0, f64::max);
    let mut hi = ((peak * base.size as f64) as u64).max(16_000);
    let mut lo = 0u64;
    let mut best = loop {
        let (ok, r) = try_at(hi, &mut runs)?;
        if ok {
            break r;
        }
        lo = hi;
        hi = hi.saturating_mul(2);
        if runs > 40 {
            return Err(SimError::Invalid(format!(
                "no origin uplink up to {hi} B/s meets the target; peers' downlinks may be too slow"
            )));
        }
    };
    while hi - lo > hi / 50 && hi > 1000 {
        let mid = lo + (hi - lo) / 2;
        let (ok, r) = try_at(mid, &mut runs)?;
        if ok {
            hi = mid;
            best = r;
        } else {
            lo = mid;
        }
    }
    let mut report = best;
    report.config.abort_after = None;
    Ok(Sized {
        uplink: hi,
        report,
        runs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{Mode, PeerClass, Phase};

    #[test]
    fn client_server_uplink_matches_processor_sharing() {
        // 1 MB at 3/min with p95 <= 60 s. For M/M/1-PS-like sojourns the p95 is about
        // 3 mean; whatever the exact figure, the uplink must exceed the 0.4 Mbit/s demand and
        // stay within a small multiple of it.
        let base = SimConfig {
            mode: Mode::ClientServer,
            classes: vec![PeerClass {
                weight: 1.0,
                down: 12_500_000,
                up: 0,
            }],
            arrivals: vec![Phase {
                per_second: 0.05,
                duration: Duration::from_secs(3 * 3600),
                fixed: false,
            }],
            ..SimConfig::default()
        };
        let s =
            smallest_uplink(&base, Duration::from_secs(60), &mut |c| crate::sim::run(c)).unwrap();
        assert!(s.uplink > 50_000 && s.uplink < 200_000, "{}", s.uplink);
        assert!(meets(&s.report, Duration::from_secs(60)));
        let mut below = base.clone();
        below.seed_up = s.uplink * 85 / 100;
        assert!(!meets(
            &crate::sim::run(&below).unwrap(),
            Duration::from_secs(60)
        ));
    }
}
