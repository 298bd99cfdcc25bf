//! systemd's service notifications (sd_notify(3)) for `Type=notify` units: `READY=1` once the
//! service serves, `STATUS=` lines while it runs, `STOPPING=1` at the end. A datagram of
//! `KEY=VALUE` lines to the unix socket named by `$NOTIFY_SOCKET` (a path, or an abstract
//! name written with a leading `@`); without that variable (not started by systemd) nothing
//! is sent. The few lines the `sd-notify` crate would bring.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

/// Where `$NOTIFY_SOCKET` says to send notifications.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotifyAddr {
    /// A socket file.
    Path(PathBuf),
    /// A Linux abstract socket name (without the `@`).
    Abstract(Vec<u8>),
}

impl NotifyAddr {
    /// Parses `$NOTIFY_SOCKET`'s value: an absolute path or `@name`.
    pub fn parse(value: &OsStr) -> io::Result<NotifyAddr> {
        let bytes = value.as_bytes();
        match bytes.first() {
            Some(b'/') => Ok(NotifyAddr::Path(PathBuf::from(value))),
            Some(b'@') if bytes.len() > 1 => Ok(NotifyAddr::Abstract(bytes[1..].to_vec())),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "NOTIFY_SOCKET={}: neither an absolute path nor an @abstract name",
                    value.to_string_lossy()
                ),
            )),
        }
    }
}

/// The status line systemd shows for a serving seed (`systemctl status`).
pub fn status_line(torrents: usize, peers: u64) -> String {
    let s = |n: u64| if n == 1 { "" } else { "s" };
    format!(
        "STATUS=serving {torrents} torrent{}, {peers} peer{}",
        s(torrents as u64),
        s(peers)
    )
}

/// A connection to systemd's notification socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: std::os::unix::net::SocketAddr,
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` names; `None` when it is unset or empty (not run by
    /// systemd as `Type=notify`).
    pub fn from_env() -> io::Result<Option<Notifier>> {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(v) if !v.is_empty() => Notifier::new(&NotifyAddr::parse(&v)?).map(Some),
            _ => Ok(None),
        }
    }

    /// A notifier sending to `addr`.
    pub fn new(addr: &NotifyAddr) -> io::Result<Notifier> {
        let addr = match addr {
            NotifyAddr::Path(p) => std::os::unix::net::SocketAddr::from_pathname(p)?,
            NotifyAddr::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name)?
            }
        };
        Ok(Notifier {
            socket: UnixDatagram::unbound()?,
            addr,
        })
    }

    /// Sends `state`: one or more `KEY=VALUE` lines.
    pub fn notify(&self, state: &str) -> io::Result<()> {
        let sent = self.socket.send_to_addr(state.as_bytes(), &self.addr)?;
        if sent != state.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "notification datagram cut short",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_as_systemd_writes_them() {
        assert_eq!(
            NotifyAddr::parse(OsStr::new("/run/systemd/notify")).unwrap(),
            NotifyAddr::Path("/run/systemd/notify".into())
        );
        assert_eq!(
            NotifyAddr::parse(OsStr::new("@/org/freedesktop/systemd1/notify/42")).unwrap(),
            NotifyAddr::Abstract(b"/org/freedesktop/systemd1/notify/42".to_vec())
        );
        for bad in ["", "@", "relative/sock", "vsock:2:1234"] {
            assert!(NotifyAddr::parse(OsStr::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_lines_count_torrents_and_peers() {
        assert_eq!(status_line(1, 0), "STATUS=serving 1 torrent, 0 peers");
        assert_eq!(status_line(3, 1), "STATUS=serving 3 torrents, 1 peer");
    }

    #[test]
    fn a_notification_reaches_a_bound_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::new(&NotifyAddr::Path(path)).unwrap();
        n.notify("READY=1\nSTATUS=x").unwrap();
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=x");
    }
}
