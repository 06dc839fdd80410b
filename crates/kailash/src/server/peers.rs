//! The per-peer connection cap: one address (IPv6: one /64, the way the
//! rate limits count clients) may not hold every connection slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use kailash_core::context::{ClientNet, IpPrefixes, TrustedProxies};

/// Live connections per peer network. Holds one entry per network with a
/// live connection, so it never outgrows the global connection cap.
#[derive(Debug)]
pub(super) struct PeerConnections {
    max: usize,
    exempt: TrustedProxies,
    counts: Mutex<HashMap<ClientNet, usize>>,
}

/// Whether a peer may open one more connection.
#[derive(Debug)]
pub(super) enum Admission {
    /// Yes; the slot is released when dropped (`None`: not counted).
    Admitted(Option<PeerSlot>),
    /// No: the peer already holds its share.
    Refused,
}

impl PeerConnections {
    /// `None` when the cap cannot bite before the global one does.
    pub(super) fn new(max: usize, global_max: usize, exempt: TrustedProxies) -> Option<Arc<Self>> {
        (max < global_max).then(|| {
            Arc::new(Self {
                max,
                exempt,
                counts: Mutex::new(HashMap::new()),
            })
        })
    }

    /// Counts a new connection from `peer`; trusted proxies are exempt.
    pub(super) fn admit(self: &Arc<Self>, peer: IpAddr) -> Admission {
        if self.exempt.is_trusted(peer) {
            return Admission::Admitted(None);
        }
        let net = IpPrefixes::DEFAULT.group(peer);
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(net).or_insert(0);
        if *count >= self.max {
            return Admission::Refused;
        }
        *count += 1;
        Admission::Admitted(Some(PeerSlot {
            peers: self.clone(),
            net,
        }))
    }
}

/// One counted connection; released on drop.
#[derive(Debug)]
pub(super) struct PeerSlot {
    peers: Arc<PeerConnections>,
    net: ClientNet,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut counts = self
            .peers
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.net) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.net);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_network_gets_its_share_and_gives_it_back() {
        let proxies = TrustedProxies::new(["10.0.0.0/8".parse().unwrap()]);
        let peers = PeerConnections::new(2, 100, proxies).unwrap();
        let a = peers.admit(ip("192.0.2.1"));
        let b = peers.admit(ip("192.0.2.1"));
        assert!(matches!(peers.admit(ip("192.0.2.1")), Admission::Refused));
        assert!(matches!(
            peers.admit(ip("192.0.2.2")),
            Admission::Admitted(Some(_))
        ));
        // One IPv6 client is its /64.
        let _c = peers.admit(ip("2001:db8::1"));
        let _d = peers.admit(ip("2001:db8::2"));
        assert!(matches!(peers.admit(ip("2001:db8::3")), Admission::Refused));
        // Trusted proxies are not counted.
        for _ in 0..5 {
            assert!(matches!(
                peers.admit(ip("10.1.1.1")),
                Admission::Admitted(None)
            ));
        }
        drop(a);
        assert!(matches!(
            peers.admit(ip("192.0.2.1")),
            Admission::Admitted(Some(_))
        ));
        drop(b);
        assert!(PeerConnections::new(100, 100, TrustedProxies::none()).is_none());
    }
}
