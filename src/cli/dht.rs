//! The DHT flags of `seed` and `get` (`--no-dht`, `--dht-port`, `--dht-bootstrap`) and the
//! node's start from them.

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use crate::dht::port::{KrpcHandoff, SharedPort};
use crate::dht::{bind_ip_for, DhtConfig, DhtNode, DEFAULT_BOOTSTRAP};

/// The DHT flags.
#[derive(Clone, Debug, Default, Args)]
pub struct DhtArgs {
    /// Do not run a DHT node (BEP 5). By default public torrents are announced to the DHT
    /// and looked up in it; private ones (private=1) never are.
    #[arg(long)]
    pub no_dht: bool,
    /// A UDP port of the DHT's own (default: the listen port, shared with uTP; a free port
    /// when that is 0, or when the DHT binds it itself, without uTP, and it is taken).
    #[arg(long, value_name = "PORT")]
    pub dht_port: Option<u16>,
    /// A node to bootstrap the DHT from (repeat for several; default: router.bittorrent.com,
    /// dht.transmissionbt.com and router.utorrent.com, port 6881). Nodes saved at the last
    /// run are tried too.
    #[arg(long, value_name = "HOST:PORT")]
    pub dht_bootstrap: Vec<String>,
}

impl DhtArgs {
    /// Starts the node unless `--no-dht`: on `--dht-port`, else on the listen port: shared
    /// with uTP when `utp` (one of uTP's sockets on it) is given, the cores handing the
    /// node its datagrams through the [`KrpcHandoff`] returned; else bound by the node
    /// (falling back to any port when that one is taken). The routing table is read from
    /// and saved to `nodes_file`.
    pub fn start(
        &self,
        listen: SocketAddr,
        nodes_file: Option<PathBuf>,
        utp: Option<&UdpSocket>,
    ) -> anyhow::Result<Option<(Arc<DhtNode>, Option<KrpcHandoff>)>> {
        if self.no_dht {
            return Ok(None);
        }
        let ip = bind_ip_for(listen);
        let bootstrap = if self.dht_bootstrap.is_empty() {
            DEFAULT_BOOTSTRAP.iter().map(|s| s.to_string()).collect()
        } else {
            self.dht_bootstrap.clone()
        };
        let config = |port| DhtConfig {
            bind: SocketAddrV4::new(ip, port),
            shared: None,
            bootstrap: bootstrap.clone(),
            nodes_file: nodes_file.clone(),
        };
        let node = match (self.dht_port, utp) {
            (Some(port), _) => DhtNode::start(config(port))?,
            (None, Some(utp)) => {
                let (shared, handoff) = SharedPort::new(utp)
                    .with_context(|| format!("cannot share udp {listen} with the DHT"))?;
                let node = DhtNode::start(DhtConfig {
                    shared: Some(shared),
                    ..config(listen.port())
                })?;
                return Ok(Some((Arc::new(node), Some(handoff))));
            }
            (None, None) => {
                let port = listen.port();
                match DhtNode::start(config(port)) {
                    Ok(n) => n,
                    Err(e) if port != 0 => {
                        tracing::warn!("{e}; the DHT takes any free port");
                        DhtNode::start(config(0))?
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        Ok(Some((Arc::new(node), None)))
    }
}
