//! Zero-copy sends (`IORING_OP_SENDMSG_ZC`) for `seedbox seed --send-zc-threshold`.
//!
//! tokio-uring 0.5 offers `SENDMSG_ZC` only on its `UdpSocket`, and its op cannot be used on a
//! TCP connection that may fail: it unwraps the first completion's result, but the kernel
//! reports a failed send (`EPIPE` from a peer that left, `EFAULT` from a truncated mapping) in
//! that very completion, flagged `IORING_CQE_F_MORE`, so the task panics, and the op it leaves
//! behind makes the runtime wait forever when it shuts down. So each core owns a small ring of
//! its own for these sends ([`ZeroCopyRing`]); a task woken through the ring's descriptor (a
//! `tokio` `AsyncFd` on the same current-thread runtime) reads its completions.
//!
//! A send resolves on its first completion (the bytes the kernel took: a short count on a
//! partial send, as with `writev`); the kernel may read the pages until the second, the
//! notification, so the ring keeps the segments (`Bytes` handles to the mapping and the
//! headers, not copies) until then, also when the sending future was dropped (a send timeout).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use io_uring::{cqueue, opcode, types, IoUring};
use slab::Slab;
use tokio::io::unix::AsyncFd;

/// Submission queue entries of a core's zero-copy ring (the completion queue is twice this).
const RING_ENTRIES: u32 = 256;
/// `IORING_SEND_ZC_REPORT_USAGE`: the notification says whether the kernel had to copy.
const SEND_ZC_REPORT_USAGE: u16 = 1 << 3;
/// `IORING_NOTIF_USAGE_ZC_COPIED`, in the notification's result.
const NOTIF_USAGE_ZC_COPIED: u32 = 1 << 31;
/// `IORING_CQE_F_NOTIF`: the completion is a zero-copy notification.
const CQE_F_NOTIF: u32 = 1 << 3;

/// One send in flight: what the kernel may still read, and where its result goes.
struct Slot {
    /// Kept until the notification: the kernel reads these pages until then.
    _segments: Vec<Bytes>,
    _iovecs: Vec<libc::iovec>,
    _msg: Box<libc::msghdr>,
    /// The first completion's result (bytes sent, or `-errno`).
    result: Option<i32>,
    /// The last completion has arrived: the kernel is done with the buffers.
    finished: bool,
    /// The sending future is gone (it took the result, or was dropped).
    detached: bool,
    waker: Option<Waker>,
}

/// Zero-copy sends completed so far on one core.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZeroCopyCounts {
    /// Sends whose notification arrived.
    pub notified: u64,
    /// Of those, sends the kernel copied anyway (always the case on loopback).
    pub copied: u64,
}

/// A core's ring for zero-copy sends. Single-threaded: lives in the core's context.
pub struct ZeroCopyRing {
    ring: RefCell<IoUring>,
    slots: RefCell<Slab<Slot>>,
    counts: Cell<ZeroCopyCounts>,
}

impl ZeroCopyRing {
    /// A new ring (fails where io_uring is unavailable).
    pub fn new() -> io::Result<Rc<ZeroCopyRing>> {
        Ok(Rc::new(ZeroCopyRing {
            ring: RefCell::new(IoUring::new(RING_ENTRIES)?),
            slots: RefCell::new(Slab::new()),
            counts: Cell::new(ZeroCopyCounts::default()),
        }))
    }

    /// Sends completed so far.
    pub fn counts(&self) -> ZeroCopyCounts {
        self.counts.get()
    }

    /// Sends in flight (the kernel may still hold their pages).
    pub fn in_flight(&self) -> usize {
        self.slots.borrow().len()
    }

    /// Reads completions for ever; run it as a task on the core's runtime.
    pub async fn reap(self: Rc<Self>) -> io::Result<()> {
        // SAFETY: the ring's descriptor stays open as long as `self`, which this future holds
        // for as long as the `AsyncFd` lives.
        let fd = unsafe { AsyncFd::register(self.ring.borrow().as_raw_fd()) }?;
        loop {
            self.drain();
            let mut guard = fd.readable().await?;
            self.drain();
            guard.clear_ready();
        }
    }

    /// Sends `segments` (in order, as one message) on `socket` with `SENDMSG_ZC`. Returns the
    /// bytes sent and the segments, like tokio-uring's `writev`. The socket must stay open
    /// until the future resolves or is dropped (an op in flight holds the file itself).
    pub fn send(
        self: &Rc<Self>,
        socket: RawFd,
        segments: Vec<Bytes>,
    ) -> impl Future<Output = (io::Result<usize>, Vec<Bytes>)> {
        let submitted = self.submit(socket, &segments);
        SendZc {
            ring: self.clone(),
            key: submitted,
            segments: Some(segments),
        }
    }

    fn submit(&self, socket: RawFd, segments: &[Bytes]) -> io::Result<usize> {
        let iovecs: Vec<libc::iovec> = segments
            .iter()
            .map(|s| libc::iovec {
                iov_base: s.as_ptr() as *mut libc::c_void,
                iov_len: s.len(),
            })
            .collect();
        // SAFETY: a zeroed msghdr is valid (no name, no control data).
        let mut msg: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        msg.msg_iov = iovecs.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = iovecs.len() as _;
        let sqe_msg: *const libc::msghdr = &*msg;
        let mut slots = self.slots.borrow_mut();
        let key = slots.insert(Slot {
            // Clones of the handles (reference counts), not of the data.
            _segments: segments.to_vec(),
            _iovecs: iovecs,
            _msg: msg,
            result: None,
            finished: false,
            detached: false,
            waker: None,
        });
        let sqe = opcode::SendMsgZc::new(types::Fd(socket), sqe_msg)
            .flags(libc::MSG_NOSIGNAL as u32)
            .ioprio(SEND_ZC_REPORT_USAGE)
            .build()
            .user_data(key as u64);
        let mut ring = self.ring.borrow_mut();
        // SAFETY: the msghdr, iovecs and the memory they point to live in the slot until the
        // kernel's last completion for this key.
        let pushed = unsafe { ring.submission().push(&sqe).is_ok() }
            || (ring.submit().is_ok() && unsafe { ring.submission().push(&sqe).is_ok() });
        if !pushed {
            slots.remove(key);
            return Err(io::Error::other("zero-copy ring full"));
        }
        if let Err(e) = ring.submit() {
            // EBUSY: completions must be read first; the entry stays queued for the next
            // submit, so only other errors are failures (the entry may never run).
            if e.raw_os_error() != Some(libc::EBUSY) {
                tracing::warn!("zero-copy submit failed: {e}");
            }
        }
        Ok(key)
    }

    /// Takes every completion from the ring, wakes the senders, frees finished slots.
    fn drain(&self) {
        let mut ring = self.ring.borrow_mut();
        // Anything pushed while the queue was busy.
        let _ = ring.submit();
        let mut slots = self.slots.borrow_mut();
        let mut counts = self.counts.get();
        for cqe in ring.completion() {
            let key = cqe.user_data() as usize;
            let Some(slot) = slots.get_mut(key) else {
                continue;
            };
            let flags = cqe.flags();
            if flags & CQE_F_NOTIF != 0 {
                counts.notified += 1;
                if cqe.result() as u32 & NOTIF_USAGE_ZC_COPIED != 0 {
                    counts.copied += 1;
                }
            } else if slot.result.is_none() {
                slot.result = Some(cqe.result());
                if let Some(w) = slot.waker.take() {
                    w.wake();
                }
            }
            if !cqueue::more(flags) {
                slot.finished = true;
                if slot.detached {
                    slots.remove(key);
                }
            }
        }
        self.counts.set(counts);
    }
}

/// The future of one [`ZeroCopyRing::send`].
struct SendZc {
    ring: Rc<ZeroCopyRing>,
    key: io::Result<usize>,
    segments: Option<Vec<Bytes>>,
}

impl Future for SendZc {
    type Output = (io::Result<usize>, Vec<Bytes>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let key = match &this.key {
            Ok(k) => *k,
            Err(e) => {
                let e = io::Error::new(e.kind(), e.to_string());
                return Poll::Ready((Err(e), this.segments.take().unwrap_or_default()));
            }
        };
        let mut slots = this.ring.slots.borrow_mut();
        let slot = &mut slots[key];
        let Some(result) = slot.result else {
            slot.waker = Some(cx.waker().clone());
            return Poll::Pending;
        };
        slot.detached = true;
        if slot.finished {
            slots.remove(key);
        }
        this.key = Err(io::Error::other("polled after completion"));
        let out = if result < 0 {
            Err(io::Error::from_raw_os_error(-result))
        } else {
            Ok(result as usize)
        };
        Poll::Ready((out, this.segments.take().unwrap_or_default()))
    }
}

impl Drop for SendZc {
    fn drop(&mut self) {
        // Dropped before its result (a send timeout): the slot lives on until the kernel's
        // last completion, then `drain` frees it.
        if let Ok(key) = self.key {
            let mut slots = self.ring.slots.borrow_mut();
            if let Some(slot) = slots.get_mut(key) {
                slot.detached = true;
                slot.waker = None;
                if slot.finished {
                    slots.remove(key);
                }
            }
        }
    }
}
