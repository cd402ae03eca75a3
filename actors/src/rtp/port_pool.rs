//! The pool of local RTP ports, `RTP_PORT_START..=RTP_PORT_END`: one even port per call (RFC 3550
//! §11 keeps the odd neighbour for RTCP), bound as a UDP socket the moment it is handed out and
//! returned to the pool when the [`PortLease`] is dropped — that is, when the `CallActor` that owns
//! it stops.
//!
//! Shared by every call (`PortPool` is a cheap `Clone` over an `Arc`). A port the operating system
//! refuses (bound by another process, or still held by a socket cloned out of an earlier lease) is
//! skipped and retried on a later call; when no port can be bound the call fails at once with
//! [`CapacityExhausted`] (`capacity_exhausted`, which triggers failover).
//!
//! Released ports go to the back of the queue, so a port is reused as late as possible and stray
//! packets of a finished call are unlikely to reach the next one.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Every port of the range is leased or refused by the operating system.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no free RTP port in {start}-{end}: {leased} of {capacity} even ports in use by calls, \
     {refused} refused by the operating system"
)]
pub struct CapacityExhausted {
    /// First port of the configured range.
    pub start: u16,
    /// Last port of the configured range.
    pub end: u16,
    /// Even ports in the range.
    pub capacity: usize,
    /// Ports held by live leases.
    pub leased: usize,
    /// Free ports whose bind failed on this attempt.
    pub refused: usize,
}

/// The RTP port range of the gateway, shared by all calls.
#[derive(Debug, Clone)]
pub struct PortPool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    bind_ip: IpAddr,
    start: u16,
    end: u16,
    capacity: usize,
    /// Ports not leased, in the order they will be tried.
    free: Mutex<VecDeque<u16>>,
}

impl Inner {
    /// The queue is consistent after every single push or pop, so a panic elsewhere while the lock
    /// was held leaves nothing to repair: a poisoned lock is simply taken over.
    fn free(&self) -> MutexGuard<'_, VecDeque<u16>> {
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl PortPool {
    /// A pool of the even ports in `start..=end` (port 0 excluded), bound on `bind_ip` (typically
    /// `0.0.0.0`, or the local address `PUBLIC_IP` is mapped to). An empty range gives a pool whose
    /// every `acquire` fails; the configuration is expected to have rejected it already.
    pub fn new(bind_ip: IpAddr, start: u16, end: u16) -> Self {
        let first = u32::from(start.max(2)).next_multiple_of(2);
        let free: VecDeque<u16> = (first..=u32::from(end))
            .step_by(2)
            .filter_map(|p| u16::try_from(p).ok())
            .collect();
        Self {
            inner: Arc::new(Inner {
                bind_ip,
                start,
                end,
                capacity: free.len(),
                free: Mutex::new(free),
            }),
        }
    }

    /// Binds the next free even port and leases it. Ports the operating system refuses stay in the
    /// pool (at the back) and are tried again by later calls. Does not block beyond the `bind`
    /// system calls.
    pub fn acquire(&self) -> Result<PortLease, CapacityExhausted> {
        let mut free = self.inner.free();
        let mut refused = 0;
        for _ in 0..free.len() {
            let Some(port) = free.pop_front() else {
                break;
            };
            match UdpSocket::bind((self.inner.bind_ip, port)) {
                Ok(socket) => {
                    return Ok(PortLease {
                        socket,
                        _return: PortReturn {
                            port,
                            pool: Arc::clone(&self.inner),
                        },
                    });
                }
                Err(error) => {
                    if error.kind() == io::ErrorKind::AddrInUse {
                        tracing::debug!(port, "RTP port in use elsewhere, skipped");
                    } else {
                        tracing::warn!(port, %error, ip = %self.inner.bind_ip, "RTP port cannot be bound, skipped");
                    }
                    refused += 1;
                    free.push_back(port);
                }
            }
        }
        Err(CapacityExhausted {
            start: self.inner.start,
            end: self.inner.end,
            capacity: self.inner.capacity,
            leased: self.inner.capacity - free.len(),
            refused,
        })
    }

    /// Even ports in the range.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Ports not leased right now (some may still be refused by the operating system).
    pub fn available(&self) -> usize {
        self.inner.free().len()
    }

    /// The address the sockets are bound on.
    pub fn bind_ip(&self) -> IpAddr {
        self.inner.bind_ip
    }
}

/// One leased port with its bound UDP socket. Dropping it closes the socket and returns the port.
#[derive(Debug)]
pub struct PortLease {
    // Field order matters: fields drop in declaration order, so the socket is closed before the
    // port is offered to the next call (which would otherwise fail to bind it).
    socket: UdpSocket,
    _return: PortReturn,
}

impl PortLease {
    /// The leased (even) port.
    pub fn port(&self) -> u16 {
        self._return.port
    }

    /// The bound socket (blocking mode as created by `std`, unless [`PortLease::to_tokio`] was
    /// called).
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// The socket's local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// A Tokio socket on a duplicate of the leased descriptor, for the call's async send/receive
    /// loop. Both descriptors share one open socket, which is switched to non-blocking mode. The
    /// port is unbound only when both the lease and every such clone are dropped; until then the
    /// pool skips it as "refused", so keep the clone no longer than the lease.
    ///
    /// # Panics
    /// When called outside a Tokio runtime (an actix `System` is one).
    pub fn to_tokio(&self) -> io::Result<tokio::net::UdpSocket> {
        let clone = self.socket.try_clone()?;
        clone.set_nonblocking(true)?;
        tokio::net::UdpSocket::from_std(clone)
    }
}

/// Puts the port back at the end of the queue when the lease is dropped.
#[derive(Debug)]
struct PortReturn {
    port: u16,
    pool: Arc<Inner>,
}

impl Drop for PortReturn {
    fn drop(&mut self) {
        self.pool.free().push_back(self.port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::net::Ipv4Addr;

    // Each test owns a range below the Linux ephemeral range (32768-60999), so neither the other
    // tests nor sockets bound on port 0 can take these ports while the test runs.
    const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn capacity_counts_the_even_ports_of_the_inclusive_range() {
        assert_eq!(PortPool::new(LOCALHOST, 23000, 23011).capacity(), 6);
        assert_eq!(PortPool::new(LOCALHOST, 23001, 23010).capacity(), 5);
        assert_eq!(PortPool::new(LOCALHOST, 23001, 23001).capacity(), 0);
        assert_eq!(PortPool::new(LOCALHOST, 10000, 10020).capacity(), 11);
        assert_eq!(PortPool::new(LOCALHOST, 65534, 65535).capacity(), 1);
        assert_eq!(
            PortPool::new(LOCALHOST, 0, 3).capacity(),
            1,
            "port 0 is never leased"
        );
        assert_eq!(PortPool::new(LOCALHOST, 23010, 23000).capacity(), 0);
    }

    #[test]
    fn leases_are_distinct_even_bound_ports_until_exhausted() {
        let pool = PortPool::new(LOCALHOST, 23020, 23025);
        let leases: Vec<PortLease> = (0..3).map(|_| pool.acquire().unwrap()).collect();
        let ports: HashSet<u16> = leases.iter().map(PortLease::port).collect();
        assert_eq!(ports, HashSet::from([23020, 23022, 23024]));
        for lease in &leases {
            assert_eq!(
                lease.local_addr().unwrap(),
                SocketAddr::new(LOCALHOST, lease.port())
            );
        }
        assert_eq!(pool.available(), 0);
        let err = pool.acquire().unwrap_err();
        assert_eq!(
            err,
            CapacityExhausted {
                start: 23020,
                end: 23025,
                capacity: 3,
                leased: 3,
                refused: 0,
            }
        );
        assert!(err.to_string().contains("3 of 3 even ports in use"));
    }

    #[test]
    fn dropping_a_lease_returns_its_port() {
        let pool = PortPool::new(LOCALHOST, 23030, 23033);
        let a = pool.acquire().unwrap();
        let b = pool.acquire().unwrap();
        assert!(pool.acquire().is_err());
        let released = a.port();
        drop(a);
        assert_eq!(pool.available(), 1);
        let c = pool.acquire().unwrap();
        assert_eq!(
            c.port(),
            released,
            "the socket was closed, so the port binds again"
        );
        assert_ne!(c.port(), b.port());
    }

    #[test]
    fn a_port_bound_by_someone_else_is_skipped() {
        let squatter = UdpSocket::bind((LOCALHOST, 23040)).unwrap();
        let pool = PortPool::new(LOCALHOST, 23040, 23043);
        let lease = pool.acquire().unwrap();
        assert_eq!(lease.port(), 23042);
        let err = pool.acquire().unwrap_err();
        assert_eq!((err.leased, err.refused), (1, 1));
        // The refused port stays in the pool and is taken once it is free.
        drop(squatter);
        assert_eq!(pool.acquire().unwrap().port(), 23040);
    }

    #[test]
    fn released_ports_are_reused_last() {
        let pool = PortPool::new(LOCALHOST, 23050, 23055);
        let first = pool.acquire().unwrap();
        assert_eq!(first.port(), 23050);
        drop(first);
        assert_eq!(pool.acquire().unwrap().port(), 23052);
    }

    #[test]
    fn concurrent_acquires_never_share_a_port() {
        let pool = PortPool::new(LOCALHOST, 23060, 23079);
        let handles: Vec<_> = (0..10)
            .map(|_| {
                let pool = pool.clone();
                std::thread::spawn(move || pool.acquire())
            })
            .collect();
        let leases: Vec<PortLease> = handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect();
        let ports: HashSet<u16> = leases.iter().map(PortLease::port).collect();
        assert_eq!(ports.len(), 10);
        assert!(pool.acquire().is_err());
        drop(leases);
        assert_eq!(pool.available(), 10);
    }

    #[tokio::test]
    async fn the_tokio_clone_receives_on_the_leased_port() {
        let pool = PortPool::new(LOCALHOST, 23080, 23081);
        let lease = pool.acquire().unwrap();
        let socket = lease.to_tokio().unwrap();
        let peer = UdpSocket::bind((LOCALHOST, 0)).unwrap();
        peer.send_to(b"rtp", lease.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = socket.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"rtp"[..], peer.local_addr().unwrap()));

        // While the clone lives the port stays bound, so the pool skips it.
        drop(lease);
        assert!(pool.acquire().is_err());
        drop(socket);
        assert_eq!(pool.acquire().unwrap().port(), 23080);
    }
}
