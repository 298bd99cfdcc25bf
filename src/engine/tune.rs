//! Optional settings of accepted sockets and worker threads: the send buffer (`SO_SNDBUF`),
//! `TCP_NOTSENT_LOWAT`, and pinning each worker thread to one CPU. All off by default (the
//! kernel's autotuning and scheduler decide); see `tuning.md` for what each did here.

use std::io;
use std::os::fd::{BorrowedFd, RawFd};

use super::EngineConfig;

/// Applies the configured socket options to an accepted connection's descriptor `fd`.
pub(super) fn tune_socket(fd: RawFd, config: &EngineConfig) -> io::Result<()> {
    // SAFETY: `fd` is the open descriptor of a stream the caller owns for this call.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let sock = socket2::SockRef::from(&fd);
    if let Some(bytes) = config.send_buffer {
        // The kernel doubles the value (for its bookkeeping) and caps it at net.core.wmem_max;
        // a set SO_SNDBUF also turns the socket's send-buffer autotuning off.
        sock.set_send_buffer_size(bytes)?;
    }
    if let Some(bytes) = config.notsent_lowat {
        set_int(&sock, libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT, bytes)?;
    }
    Ok(())
}

fn set_int(
    sock: &socket2::SockRef<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: u32,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let v = libc::c_int::try_from(value).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt with a valid descriptor and an int option value.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The CPUs this process may run on (its affinity mask), in ascending order.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: sched_getaffinity fills a local cpu_set_t.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect())
    }
}

/// The CPU worker `core` is pinned to: the `core`-th allowed CPU, wrapping around when there
/// are more workers than CPUs. `None` when no CPU is allowed.
pub fn cpu_for_core(allowed: &[usize], core: usize) -> Option<usize> {
    (!allowed.is_empty()).then(|| allowed[core % allowed.len()])
}

/// Pins the calling thread to `cpu` (`sched_setaffinity`).
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: sched_setaffinity for the calling thread (pid 0) with a local cpu_set_t.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_take_the_allowed_cpus_in_turn() {
        let allowed = [2, 5, 7];
        let cpus: Vec<_> = (0..5).map(|c| cpu_for_core(&allowed, c).unwrap()).collect();
        assert_eq!(cpus, vec![2, 5, 7, 2, 5]);
        assert_eq!(cpu_for_core(&[], 0), None);
    }

    #[test]
    fn this_process_may_run_somewhere() {
        let cpus = allowed_cpus().unwrap();
        assert!(!cpus.is_empty());
    }

    #[test]
    fn socket_options_are_applied() {
        use std::os::fd::AsRawFd;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let config = EngineConfig {
            send_buffer: Some(64 * 1024),
            notsent_lowat: Some(32 * 1024),
            ..EngineConfig::default()
        };
        tune_socket(s.as_raw_fd(), &config).unwrap();
        let sock = socket2::SockRef::from(&s);
        // Linux doubles SO_SNDBUF.
        assert_eq!(sock.send_buffer_size().unwrap(), 128 * 1024);
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt into a local int.
        let rc = unsafe {
            libc::getsockopt(
                s.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_NOTSENT_LOWAT,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0);
        assert_eq!(v, 32 * 1024);
    }
}
