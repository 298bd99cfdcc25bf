//! Arrivals: a schedule of Poisson phases, and sampling from it.

use rand::Rng;

use super::config::Phase;
use super::event::{nanos, Nanos, SECOND};

/// Draws arrival times from consecutive Poisson phases.
#[derive(Clone, Debug)]
pub struct Arrivals {
    /// (start, end, rate per second) of each phase, in virtual time.
    phases: Vec<(Nanos, Nanos, f64)>,
    /// The last arrival drawn (or the start of the phase being drawn from).
    cursor: Nanos,
    phase: usize,
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
                (start, t, p.per_second)
            })
            .collect();
        Arrivals {
            phases,
            cursor: 0,
            phase: 0,
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

    /// The next arrival time, or `None` when the schedule is over. Exponential gaps at the
    /// current phase's rate; a gap crossing the phase's end restarts at the next phase (exact,
    /// since the exponential distribution is memoryless).
    pub fn next<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Option<Nanos> {
        while let Some(&(_, end, rate)) = self.phases.get(self.phase) {
            if rate > 0.0 {
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
            },
            Phase {
                per_second: 0.0,
                duration: Duration::from_secs(500),
            },
            Phase {
                per_second: 2.0,
                duration: Duration::from_secs(1_000),
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
}
