//! Request pipeline sizing: how many block requests to keep outstanding at one peer.
//!
//! To keep a peer's link busy we need its bandwidth-delay product in flight: the bytes it can
//! deliver during one round trip, plus a margin that absorbs rate swings and the latency of our
//! own request path. Never fewer than [`MIN_PIPELINE`] (a fresh peer has no rate yet) and never
//! more than the peer's `reqq` (BEP 10), past which it would drop or reject requests.

use std::time::Duration;

use super::BLOCK_SIZE;

/// The fewest requests kept outstanding at an unchoked peer.
pub const MIN_PIPELINE: u32 = 4;
/// Extra requests on top of the bandwidth-delay product.
pub const PIPELINE_MARGIN: u32 = 2;
/// The shortest time horizon a pipeline covers: as libtorrent's `request_queue_time`, keep at
/// least this much of a peer's measured rate in flight. Sizing by the measured request-to-block
/// time alone locks in: a short queue gives a short measured time, which keeps the queue short
/// (Little's law), and a fast loopback seed never gets enough requests to fill its link.
pub const REQUEST_QUEUE_TIME: Duration = Duration::from_secs(1);
/// The request queue length assumed when the peer did not announce `reqq` (libtorrent's
/// default announcement).
pub const DEFAULT_REQQ: u32 = 250;

/// Outstanding requests to keep at a peer that delivers `download_rate` bytes per second with
/// round-trip time `rtt`, given the queue length it announced (`reqq`, if any).
///
/// `ceil(rate * rtt / BLOCK_SIZE) + PIPELINE_MARGIN`, clamped to `[MIN_PIPELINE, reqq]`; a
/// `reqq` below the minimum wins (the peer said it cannot queue more), but at least one request
/// is always allowed.
pub fn pipeline_depth(download_rate: u64, rtt: Duration, reqq: Option<u32>) -> u32 {
    let reqq = reqq.unwrap_or(DEFAULT_REQQ).max(1);
    // In u64 when it cannot overflow, as u128 division is a library call.
    let blocks = match u64::try_from(rtt.as_nanos())
        .ok()
        .and_then(|rtt| download_rate.checked_mul(rtt))
    {
        Some(x) => u128::from((x / 1_000_000_000).div_ceil(u64::from(BLOCK_SIZE))),
        None => {
            let bytes_in_flight =
                u128::from(download_rate).saturating_mul(rtt.as_nanos()) / 1_000_000_000;
            bytes_in_flight.div_ceil(u128::from(BLOCK_SIZE))
        }
    };
    let depth = u32::try_from(blocks)
        .unwrap_or(u32::MAX)
        .saturating_add(PIPELINE_MARGIN);
    depth.max(MIN_PIPELINE).min(reqq)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    #[test]
    fn the_u64_shortcut_agrees_with_u128_arithmetic() {
        use rand::{Rng, SeedableRng};
        let reference = |rate: u64, rtt: Duration, reqq: Option<u32>| {
            let reqq = reqq.unwrap_or(DEFAULT_REQQ).max(1);
            let bytes = u128::from(rate).saturating_mul(rtt.as_nanos()) / 1_000_000_000;
            let blocks = bytes.div_ceil(u128::from(BLOCK_SIZE));
            let depth = u32::try_from(blocks)
                .unwrap_or(u32::MAX)
                .saturating_add(PIPELINE_MARGIN);
            depth.max(MIN_PIPELINE).min(reqq)
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for _ in 0..10_000 {
            let rate = rng.gen::<u64>() >> rng.gen_range(0..64);
            let rtt = Duration::from_nanos(rng.gen::<u64>() >> rng.gen_range(0..64));
            let reqq = Some(rng.gen_range(1..u32::MAX));
            assert_eq!(
                pipeline_depth(rate, rtt, reqq),
                reference(rate, rtt, reqq),
                "{rate} {rtt:?}"
            );
        }
        let slow = Duration::from_secs(u64::MAX);
        assert_eq!(pipeline_depth(u64::MAX, slow, None), DEFAULT_REQQ);
    }

    #[test]
    fn bandwidth_delay_product_plus_margin() {
        // 10 MiB/s over 50 ms: 512 KiB in flight = 32 blocks, + 2.
        assert_eq!(
            pipeline_depth(10 * MB, Duration::from_millis(50), None),
            32 + PIPELINE_MARGIN
        );
        // A partial block rounds up: 1 MiB/s over 10 ms is 10486 bytes, one block.
        assert_eq!(
            pipeline_depth(MB, Duration::from_millis(10), Some(1000)),
            MIN_PIPELINE
        );
        assert_eq!(
            pipeline_depth(4 * MB, Duration::from_millis(100), Some(1000)),
            26 + PIPELINE_MARGIN
        );
    }

    #[test]
    fn never_below_the_minimum() {
        assert_eq!(pipeline_depth(0, Duration::ZERO, None), MIN_PIPELINE);
        assert_eq!(
            pipeline_depth(0, Duration::from_secs(1), Some(500)),
            MIN_PIPELINE
        );
    }

    #[test]
    fn never_above_the_peers_reqq() {
        // 1 GiB/s over 1 s would be 65536 blocks.
        assert_eq!(
            pipeline_depth(1 << 30, Duration::from_secs(1), None),
            DEFAULT_REQQ
        );
        assert_eq!(
            pipeline_depth(1 << 30, Duration::from_secs(1), Some(2000)),
            2000
        );
        // A peer announcing a tiny queue gets only that, even below the minimum.
        assert_eq!(
            pipeline_depth(10 * MB, Duration::from_millis(50), Some(2)),
            2
        );
        assert_eq!(
            pipeline_depth(10 * MB, Duration::from_millis(50), Some(0)),
            1
        );
    }

    #[test]
    fn absurd_inputs_do_not_overflow() {
        assert_eq!(
            pipeline_depth(u64::MAX, Duration::MAX, Some(u32::MAX)),
            u32::MAX
        );
    }
}
