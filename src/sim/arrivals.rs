//! Arrivals: a schedule of phases (Poisson, or evenly spaced), and sampling from it.

use rand::Rng;

use super::config::Phase;
use super::event::{nanos, Nanos, SECOND};

/// Draws arrival times from consecutive phases.
#[derive(Clone, Debug)]
pub struct Arrivals {
    /// (start, end, rate per second, fixed) of each phase, in virtual time.
    phases: Vec<(Nanos, Nanos, f64, bool)>,
    /// The last arrival drawn (or the start of the phase being drawn from).
    cursor: Nanos,
    phase: usize,
    /// Arrivals drawn so far in the current phase (fixed phases place the `k`-th at
    /// `start + k / rate`, so rounding never accumulates).
    drawn: u64,
}

impl Arrivals {
    /// The phases run back to back from time zero.
    pub fn new(schedule: &[Phase]) -> Self {
        let mut t = 0;
        let phases = schedule
            .iter()
            .map(|p| {
                let start = t;
                t += nanos(p.duration);
                (start, t, p.per_second, p.fixed)
            })
            .collect();
        Arrivals {
            phases,
            cursor: 0,
            phase: 0,
            drawn: 0,
        }
    }

    /// When the last phase ends.
    pub fn end(&self) -> Nanos {
        self.phases.last().map_or(0, |p| p.1)
    }

    /// The phase a time falls in (times past the end count in the last phase).
    pub fn phase_of(&self, t: Nanos) -> usize {
        self.phases
            .iter()
            .position(|p| t < p.1)
            .unwrap_or(self.phases.len().saturating_sub(1))
    }

    /// The next arrival time, or `None` when the schedule is over. Poisson phases draw
    /// exponential gaps at the phase's rate; a gap crossing the phase's end restarts at the
    /// next phase (exact, since the exponential distribution is memoryless). Fixed phases
    /// place arrivals exactly `1 / rate` apart from the phase's start, drawing nothing.
    pub fn next<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Option<Nanos> {
        while let Some(&(start, end, rate, fixed)) = self.phases.get(self.phase) {
            if fixed && rate > 0.0 {
                let t = start.saturating_add((self.drawn as f64 / rate * SECOND as f64) as Nanos);
                if t < end {
                    self.drawn += 1;
                    self.cursor = t;
                    return Some(t);
                }
            } else if rate > 0.0 {
                let u: f64 = rng.gen();
                let gap = -(1.0 - u).ln() / rate;
                let t = self.cursor.saturating_add((gap * SECOND as f64) as Nanos);
                if t < end {
                    self.cursor = t;
                    return Some(t);
                }
            }
            self.cursor = end;
            self.phase += 1;
            self.drawn = 0;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::time::Duration;

    #[test]
    fn counts_follow_the_phases() {
        let schedule = [
            Phase {
                per_second: 0.1,
                duration: Duration::from_secs(10_000),
                fixed: false,
            },
            Phase {
                per_second: 0.0,
                duration: Duration::from_secs(500),
                fixed: false,
            },
            Phase {
                per_second: 2.0,
                duration: Duration::from_secs(1_000),
                fixed: false,
            },
        ];
        let mut a = Arrivals::new(&schedule);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut counts = [0u32; 3];
        let mut last = 0;
        while let Some(t) = a.next(&mut rng) {
            assert!(t >= last);
            last = t;
            counts[a.phase_of(t)] += 1;
        }
        assert!((900..1100).contains(&counts[0]), "{counts:?}");
        assert_eq!(counts[1], 0);
        assert!((1850..2150).contains(&counts[2]), "{counts:?}");
        assert_eq!(a.end(), 11_500 * SECOND);
        assert_eq!(a.phase_of(20_000 * SECOND), 2);
    }

    #[test]
    fn fixed_phases_are_evenly_spaced() {
        // 3 arrivals 2 s apart, a Poisson phase, then 2 arrivals 0.5 s apart.
        let schedule = [
            Phase {
                per_second: 0.5,
                duration: Duration::from_secs(6),
                fixed: true,
            },
            Phase {
                per_second: 1.0,
                duration: Duration::from_secs(100),
                fixed: false,
            },
            Phase {
                per_second: 2.0,
                duration: Duration::from_secs(1),
                fixed: true,
            },
        ];
        let mut a = Arrivals::new(&schedule);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let all: Vec<Nanos> = std::iter::from_fn(|| a.next(&mut rng)).collect();
        assert_eq!(&all[..3], &[0, 2 * SECOND, 4 * SECOND]);
        assert_eq!(
            &all[all.len() - 2..],
            &[106 * SECOND, 106 * SECOND + SECOND / 2]
        );
        let poisson = &all[3..all.len() - 2];
        assert!((70..130).contains(&poisson.len()), "{}", poisson.len());
        assert!(poisson
            .iter()
            .all(|&t| (6 * SECOND..106 * SECOND).contains(&t)));
    }
}
