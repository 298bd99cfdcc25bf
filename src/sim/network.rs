//! The simulated network: access links and how their capacity is shared.
//!
//! Every peer (a *host*) has an uplink and a downlink capacity in bytes per second. A *flow*
//! is one connection direction that is sending a unit right now (a connection sends its
//! queued units one after another, like TCP, so it is one flow however deep its request
//! pipeline). The rate of a flow from `s` to `r` is
//!
//! ```text
//! min(up(s) / flows_out(s), down(r) / flows_in(r))
//! ```
//!
//! an equal split of the sender's uplink among its active uploads, capped by the receiver's
//! equal split of its downlink: a fluid approximation of TCP sharing, recomputed (for the
//! flows of the two hosts concerned only) whenever a flow starts or stops. Capacity a
//! receiver-capped flow leaves unused is not redistributed to the sender's other flows
//! (max-min fairness would do that), so with asymmetric links the model is slightly
//! pessimistic. With one bottleneck, as in client-server mode, it is exactly processor
//! sharing. Latency is a per-link one-way delay added to every message (see `swarm.rs`).

use super::event::{Nanos, SECOND};

/// Index of a flow in [`Network`].
pub type FlowId = u32;

#[derive(Clone, Debug, Default)]
struct Host {
    up: f64,
    down: f64,
    out: Vec<FlowId>,
    inn: Vec<FlowId>,
}

/// One unit being sent.
#[derive(Clone, Debug)]
pub struct Flow {
    /// Sending host.
    pub sender: u32,
    /// Receiving host.
    pub receiver: u32,
    /// Link and sending side of the connection this flow belongs to.
    pub link: u32,
    /// Which end of the link sends.
    pub side: u8,
    /// Bumped at every reschedule: a completion event carrying an older value is stale.
    pub tgen: u32,
    remaining: f64,
    rate: f64,
    last: Nanos,
    live: bool,
}

/// A completion to (re)schedule: flow `id` finishes at `at` unless `tgen` changes again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Due {
    /// The flow.
    pub id: FlowId,
    /// Its generation.
    pub tgen: u32,
    /// When its unit is fully sent.
    pub at: Nanos,
}

/// Hosts and active flows.
#[derive(Default)]
pub struct Network {
    hosts: Vec<Host>,
    flows: Vec<Flow>,
    free: Vec<FlowId>,
    touched: Vec<FlowId>,
}

impl Network {
    /// Adds a host; hosts are numbered from 0 in the order added.
    pub fn add_host(&mut self, up: u64, down: u64) -> u32 {
        self.hosts.push(Host {
            up: up as f64,
            down: down as f64,
            ..Host::default()
        });
        (self.hosts.len() - 1) as u32
    }

    /// The flow `id` (live or not).
    pub fn flow(&self, id: FlowId) -> &Flow {
        &self.flows[id as usize]
    }

    /// The address of flow `id`'s record, for prefetch hints: computed without reading
    /// anything.
    pub fn flow_address(&self, id: FlowId) -> usize {
        self.flows.as_ptr().wrapping_add(id as usize) as usize
    }

    /// The address of host `h`'s record, for prefetch hints: computed without reading
    /// anything.
    pub fn host_address(&self, h: u32) -> usize {
        self.hosts.as_ptr().wrapping_add(h as usize) as usize
    }

    /// Whether `id` is live and its generation is `tgen`.
    pub fn is_current(&self, id: FlowId, tgen: u32) -> bool {
        self.flows
            .get(id as usize)
            .is_some_and(|f| f.live && f.tgen == tgen)
    }

    fn fair_rate(&self, sender: u32, receiver: u32) -> f64 {
        let s = &self.hosts[sender as usize];
        let r = &self.hosts[receiver as usize];
        let up = s.up / s.out.len().max(1) as f64;
        let down = r.down / r.inn.len().max(1) as f64;
        up.min(down)
    }

    /// Brings a flow's progress to `now` and gives it its fair rate; returns its new
    /// completion when it changed.
    fn refresh(&mut self, id: FlowId, now: Nanos, force: bool) -> Option<Due> {
        let (sender, receiver) = {
            let f = &self.flows[id as usize];
            (f.sender, f.receiver)
        };
        let rate = self.fair_rate(sender, receiver);
        let f = &mut self.flows[id as usize];
        let dt = now.saturating_sub(f.last) as f64 / SECOND as f64;
        f.remaining = (f.remaining - f.rate * dt).max(0.0);
        f.last = now;
        if !force && rate == f.rate {
            return None;
        }
        f.rate = rate;
        f.tgen = f.tgen.wrapping_add(1);
        let secs = if rate > 0.0 { f.remaining / rate } else { 1e9 };
        let at = now.saturating_add((secs * SECOND as f64).ceil().max(1.0) as Nanos);
        Some(Due {
            id,
            tgen: f.tgen,
            at,
        })
    }

    /// Reshares the uplink of `sender` and the downlink of `receiver`, pushing the changed
    /// completions to `due`.
    fn reshare(&mut self, sender: u32, receiver: u32, now: Nanos, due: &mut Vec<Due>) {
        let mut touched = std::mem::take(&mut self.touched);
        touched.clear();
        touched.extend_from_slice(&self.hosts[sender as usize].out);
        touched.extend_from_slice(&self.hosts[receiver as usize].inn);
        for &id in &touched {
            if let Some(d) = self.refresh(id, now, false) {
                due.push(d);
            }
        }
        self.touched = touched;
    }

    /// Starts sending `bytes` from `sender` to `receiver` on the connection (`link`, `side`).
    /// Pushes its completion (and the changed completions of the flows it now shares links
    /// with) to `due`.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        &mut self,
        sender: u32,
        receiver: u32,
        link: u32,
        side: u8,
        bytes: u64,
        now: Nanos,
        due: &mut Vec<Due>,
    ) -> FlowId {
        let flow = Flow {
            sender,
            receiver,
            link,
            side,
            tgen: 0,
            remaining: bytes as f64,
            rate: 0.0,
            last: now,
            live: true,
        };
        let id = match self.free.pop() {
            Some(id) => {
                let tgen = self.flows[id as usize].tgen;
                self.flows[id as usize] = Flow { tgen, ..flow };
                id
            }
            None => {
                self.flows.push(flow);
                (self.flows.len() - 1) as FlowId
            }
        };
        self.hosts[sender as usize].out.push(id);
        self.hosts[receiver as usize].inn.push(id);
        self.reshare(sender, receiver, now, due);
        id
    }

    /// The flow's unit is sent and the connection has another one of `bytes` queued: keep
    /// the flow (the shares do not change) and push its next completion.
    pub fn next_unit(&mut self, id: FlowId, bytes: u64, now: Nanos, due: &mut Vec<Due>) {
        let f = &mut self.flows[id as usize];
        f.remaining = bytes as f64;
        f.last = now;
        if let Some(d) = self.refresh(id, now, true) {
            due.push(d);
        }
    }

    /// Ends a flow (its unit is sent and nothing else is queued, or the connection closed)
    /// and reshares the two hosts' links.
    pub fn stop(&mut self, id: FlowId, now: Nanos, due: &mut Vec<Due>) {
        let (sender, receiver) = {
            let f = &mut self.flows[id as usize];
            if !f.live {
                return;
            }
            f.live = false;
            f.tgen = f.tgen.wrapping_add(1);
            (f.sender, f.receiver)
        };
        let out = &mut self.hosts[sender as usize].out;
        if let Some(i) = out.iter().position(|&x| x == id) {
            out.swap_remove(i);
        }
        let inn = &mut self.hosts[receiver as usize].inn;
        if let Some(i) = inn.iter().position(|&x| x == id) {
            inn.swap_remove(i);
        }
        self.free.push(id);
        self.reshare(sender, receiver, now, due);
    }

    /// Bytes per second `host` is uploading right now.
    pub fn upload_rate(&self, host: u32) -> f64 {
        self.hosts[host as usize]
            .out
            .iter()
            .map(|&id| self.flows[id as usize].rate)
            .sum()
    }

    /// Active uploads of `host`.
    pub fn uploads(&self, host: u32) -> usize {
        self.hosts[host as usize].out.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processor_sharing_at_one_bottleneck() {
        let mut n = Network::default();
        let origin = n.add_host(1000, 0);
        let a = n.add_host(0, 10_000);
        let b = n.add_host(0, 10_000);
        let mut due = Vec::new();
        // a alone: 1000 bytes at 1000 B/s, done at 1 s.
        let fa = n.start(origin, a, 0, 0, 1000, 0, &mut due);
        assert_eq!(due.last().unwrap().at, SECOND);
        // At 0.5 s b starts: both at 500 B/s; a has 500 left -> done at 1.5 s, b at 2.5 s.
        due.clear();
        let fb = n.start(origin, b, 1, 0, 1000, SECOND / 2, &mut due);
        let at = |id| due.iter().rev().find(|d| d.id == id).unwrap().at;
        assert_eq!(at(fa), 3 * SECOND / 2);
        assert_eq!(at(fb), 5 * SECOND / 2);
        assert!(n.is_current(fa, due.iter().rev().find(|d| d.id == fa).unwrap().tgen));
        // a finishes at 1.5 s: b has 500 left at 1000 B/s -> 2 s.
        due.clear();
        n.stop(fa, 3 * SECOND / 2, &mut due);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].at, 2 * SECOND);
        assert_eq!(n.uploads(origin), 1);
        assert!((n.upload_rate(origin) - 1000.0).abs() < 1e-9);
    }

    #[test]
    fn receiver_downlink_caps_the_rate() {
        let mut n = Network::default();
        let s1 = n.add_host(1000, 0);
        let s2 = n.add_host(1000, 0);
        let r = n.add_host(0, 1000);
        let mut due = Vec::new();
        n.start(s1, r, 0, 0, 1000, 0, &mut due);
        n.start(s2, r, 1, 0, 1000, 0, &mut due);
        // Two flows into a 1000 B/s downlink: 500 each, both done at 2 s.
        assert!(due.iter().rev().take(2).all(|d| d.at == 2 * SECOND));
        assert!((n.upload_rate(s1) - 500.0).abs() < 1e-9);
    }
}
