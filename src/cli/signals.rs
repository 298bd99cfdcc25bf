//! SIGINT and SIGTERM for the long-running commands (`seed`, `tracker`): blocked before any
//! thread starts, so a signal that comes early (while the command is still starting) is held
//! for the main thread instead of killing the process.

use std::time::Duration;

/// SIGINT and SIGTERM, blocked in every thread and taken synchronously by the main thread.
pub struct Signals(libc::sigset_t);

impl Signals {
    /// Blocks the signals for this thread and the threads it starts afterwards.
    pub fn block() -> anyhow::Result<Signals> {
        Self::block_set(false)
    }

    /// [`Signals::block`], SIGHUP included (a service re-reads or re-checks on it).
    pub fn block_with_hangup() -> anyhow::Result<Signals> {
        Self::block_set(true)
    }

    fn block_set(hangup: bool) -> anyhow::Result<Signals> {
        // SAFETY: sigset manipulation on a local set, then pthread_sigmask for this thread.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            if hangup {
                libc::sigaddset(&mut set, libc::SIGHUP);
            }
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if rc != 0 {
                anyhow::bail!(
                    "cannot block signals: {}",
                    std::io::Error::from_raw_os_error(rc)
                );
            }
            Ok(Signals(set))
        }
    }

    /// Waits up to `timeout` for a signal; returns its name.
    pub fn wait(&self, timeout: Duration) -> Option<&'static str> {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: sigtimedwait with our set and a valid timespec.
        let sig = unsafe { libc::sigtimedwait(&self.0, std::ptr::null_mut(), &ts) };
        match sig {
            libc::SIGINT => Some("SIGINT"),
            libc::SIGTERM => Some("SIGTERM"),
            libc::SIGHUP => Some("SIGHUP"),
            _ => None,
        }
    }

    /// Waits for a signal however long it takes; returns its name.
    pub fn wait_forever(&self) -> &'static str {
        loop {
            if let Some(sig) = self.wait(Duration::from_secs(3600)) {
                return sig;
            }
        }
    }
}
