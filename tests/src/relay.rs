//! A TCP relay that puts a switch between the proxy under test and one node.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::error::{HarnessError, Result};

/// How long a relayed connection may take to reach the node before it is given up.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Finds the address a new connection should be forwarded to.
///
/// It is asked again for every connection, so the relay follows a node whose container came
/// back on a new published port.
pub type Upstream =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = io::Result<SocketAddr>> + Send>> + Send + Sync>;

/// What the relay does with traffic between its clients and the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayMode {
    /// Every connection is forwarded to the node.
    Open,
    /// Like a host whose server process is gone: relayed connections are closed and new
    /// connections are refused (the listening socket is closed, so connects get a reset).
    Refuse,
    /// Like a host that vanished from the network: relayed connections stay open but carry
    /// nothing any more, and new connections are accepted but never answered, so clients
    /// only notice through their own timeouts. Leaving this mode closes those connections.
    Blackhole,
}

/// A TCP relay on `127.0.0.1:<random port>` in front of one node.
///
/// The proxy under test is given the relay's address instead of the node's, so a test can
/// break the link between proxy and node with [`Relay::cut`] or [`Relay::blackhole`] while
/// the node itself keeps running and keeps talking to its peers over the Docker network
/// (for example, a primary that still streams WAL to its replicas). [`Relay::heal`] restores
/// the link. Dropping the relay closes everything it relays.
pub struct Relay {
    addr: SocketAddr,
    control: mpsc::Sender<Switch>,
    link: watch::Receiver<Link>,
    switchboard: JoinHandle<()>,
}

impl Relay {
    /// Starts a relay on a free port of 127.0.0.1 that forwards to `upstream`.
    pub async fn start(upstream: Upstream) -> Result<Relay> {
        let any_port = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let listener = bind(any_port).map_err(|source| HarnessError::Io {
            action: "relay: bind 127.0.0.1".to_string(),
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| HarnessError::Io {
            action: "relay: read the bound address".to_string(),
            source,
        })?;
        let (link_tx, link_rx) = watch::channel(Link {
            mode: RelayMode::Open,
            cuts: 0,
        });
        let (control_tx, control_rx) = mpsc::channel(8);
        let switchboard = Switchboard {
            addr,
            listener: Some(listener),
            link: link_tx,
            upstream,
        };
        let switchboard = tokio::spawn(switchboard.run(control_rx));
        Ok(Relay {
            addr,
            control: control_tx,
            link: link_rx,
            switchboard,
        })
    }

    /// The address clients connect to (stays the same for the relay's whole life).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The current mode.
    pub fn mode(&self) -> RelayMode {
        self.link.borrow().mode
    }

    /// Closes all relayed connections and refuses new ones ([`RelayMode::Refuse`]).
    pub async fn cut(&self) -> Result<()> {
        self.set_mode(RelayMode::Refuse).await
    }

    /// Silences all relayed connections and swallows new ones ([`RelayMode::Blackhole`]).
    pub async fn blackhole(&self) -> Result<()> {
        self.set_mode(RelayMode::Blackhole).await
    }

    /// Forwards new connections again ([`RelayMode::Open`]).
    pub async fn heal(&self) -> Result<()> {
        self.set_mode(RelayMode::Open).await
    }

    /// Switches to `mode`; when this returns, new connections already see the new mode.
    pub async fn set_mode(&self, mode: RelayMode) -> Result<()> {
        let stopped = || HarnessError::Io {
            action: format!("relay {}: switch to {mode:?}", self.addr),
            source: io::Error::new(io::ErrorKind::BrokenPipe, "the relay task has stopped"),
        };
        let (done_tx, done_rx) = oneshot::channel();
        self.control
            .send(Switch {
                mode,
                done: done_tx,
            })
            .await
            .map_err(|_| stopped())?;
        done_rx
            .await
            .map_err(|_| stopped())?
            .map_err(|source| HarnessError::Io {
                action: format!("relay {}: switch to {mode:?}", self.addr),
                source,
            })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // Ends the switchboard; its watch sender goes with it, which ends every connection task.
        self.switchboard.abort();
    }
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("addr", &self.addr)
            .field("mode", &self.mode())
            .finish()
    }
}

/// The state every connection task watches: the mode, and how many times the relay was cut
/// (a connection opened before the latest cut must not carry data after it).
#[derive(Clone, Copy, Debug)]
struct Link {
    mode: RelayMode,
    cuts: u64,
}

/// A request to change mode, answered once the listener is in its new state.
struct Switch {
    mode: RelayMode,
    done: oneshot::Sender<io::Result<()>>,
}

/// The task that owns the listening socket: it accepts connections and applies mode switches.
struct Switchboard {
    addr: SocketAddr,
    listener: Option<TcpListener>,
    link: watch::Sender<Link>,
    upstream: Upstream,
}

impl Switchboard {
    async fn run(mut self, mut control: mpsc::Receiver<Switch>) {
        loop {
            tokio::select! {
                switch = control.recv() => match switch {
                    Some(Switch { mode, done }) => {
                        let _ = done.send(self.switch(mode));
                    }
                    None => return,
                },
                accepted = accept(self.listener.as_ref()) => match accepted {
                    Ok(client) => self.admit(client),
                    Err(error) => {
                        tracing::warn!(relay = %self.addr, %error, "relay: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
    }

    fn switch(&mut self, mode: RelayMode) -> io::Result<()> {
        if mode == RelayMode::Refuse {
            self.listener = None;
        } else if self.listener.is_none() {
            self.listener = Some(bind(self.addr)?);
        }
        let cuts = self.link.borrow().cuts;
        let cuts = if mode == RelayMode::Open {
            cuts
        } else {
            cuts + 1
        };
        self.link.send_replace(Link { mode, cuts });
        tracing::debug!(relay = %self.addr, ?mode, "relay: switched");
        Ok(())
    }

    fn admit(&self, client: TcpStream) {
        let link = self.link.subscribe();
        let mode = link.borrow().mode;
        match mode {
            RelayMode::Open => {
                tokio::spawn(forward(client, self.upstream.clone(), link));
            }
            RelayMode::Blackhole => {
                tokio::spawn(swallow(client, link));
            }
            // No listener is open in this mode; a straggler is closed at once.
            RelayMode::Refuse => drop(client),
        }
    }
}

/// Waits for the next connection, or forever while the relay refuses connections.
async fn accept(listener: Option<&TcpListener>) -> io::Result<TcpStream> {
    match listener {
        Some(listener) => listener.accept().await.map(|(stream, _peer)| stream),
        None => std::future::pending().await,
    }
}

/// Binds a listening socket; reusing the address lets a healed relay take its port back.
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Carries one connection to the node and back until either side closes or the relay is cut.
async fn forward(mut client: TcpStream, upstream: Upstream, mut link: watch::Receiver<Link>) {
    let admitted_at = link.borrow().cuts;
    let connect = async {
        let addr = upstream().await?;
        TcpStream::connect(addr).await
    };
    let mut server = match timeout(UPSTREAM_CONNECT_TIMEOUT, connect).await {
        Ok(Ok(server)) => server,
        // The node is down: the client sees its connection closed, as with a dead server.
        Ok(Err(error)) => {
            tracing::debug!(%error, "relay: cannot reach the node");
            return;
        }
        Err(_elapsed) => return,
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);

    let cut = async {
        link.wait_for(|link| link.cuts != admitted_at)
            .await
            .map(|link| link.mode)
    };
    let cut_to = tokio::select! {
        _ = copy_bidirectional(&mut client, &mut server) => None,
        mode = cut => mode.ok(),
    };
    if cut_to == Some(RelayMode::Blackhole) {
        let _ = link
            .wait_for(|link| link.mode != RelayMode::Blackhole)
            .await;
    }
    // Dropping both sockets closes the connection on both sides.
}

/// Holds a connection accepted while blackholed, answering nothing, until the mode changes.
async fn swallow(client: TcpStream, mut link: watch::Receiver<Link>) {
    let _ = link
        .wait_for(|link| link.mode != RelayMode::Blackhole)
        .await;
    drop(client);
}
