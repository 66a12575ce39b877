//! Connection counting: `max.connections` (broker and per listener) and
//! `max.connections.per.ip`. A connection over a limit is closed as soon as it is accepted,
//! before any byte is read or any buffer allocated; a [`Permit`] gives its place back when
//! the connection ends, however it ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// The broker-wide counters.
pub struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// Which limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Broker(usize),
    Listener(usize),
    PerIp(usize),
}

/// One open connection's place in the counts.
pub struct Permit {
    limits: Arc<ConnectionLimits>,
    listener: Arc<AtomicUsize>,
    ip: IpAddr,
}

impl ConnectionLimits {
    pub fn new(max_total: i32, max_per_ip: i32) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits {
            max_total: max_total.max(0) as usize,
            max_per_ip: max_per_ip.max(0) as usize,
            total: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
        })
    }

    /// Takes a place for a connection from `ip` on a listener whose open connections are
    /// counted in `listener` (at most `listener_max`).
    pub fn acquire(
        self: &Arc<Self>,
        ip: IpAddr,
        listener: &Arc<AtomicUsize>,
        listener_max: i32,
    ) -> Result<Permit, Refused> {
        let mut per_ip = self.per_ip.lock();
        let from_ip = per_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.max_per_ip {
            return Err(Refused::PerIp(self.max_per_ip));
        }
        if self.total.load(Ordering::Relaxed) >= self.max_total {
            return Err(Refused::Broker(self.max_total));
        }
        let listener_max = listener_max.max(0) as usize;
        if listener.load(Ordering::Relaxed) >= listener_max {
            return Err(Refused::Listener(listener_max));
        }
        per_ip.insert(ip, from_ip + 1);
        self.total.fetch_add(1, Ordering::Relaxed);
        listener.fetch_add(1, Ordering::Relaxed);
        Ok(Permit {
            limits: self.clone(),
            listener: listener.clone(),
            ip,
        })
    }

    /// Open connections on the broker.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut per_ip = self.limits.per_ip.lock();
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
        self.limits.total.fetch_sub(1, Ordering::Relaxed);
        self.listener.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_release() {
        let limits = ConnectionLimits::new(3, 2);
        let l = Arc::new(AtomicUsize::new(0));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let p1 = limits.acquire(a, &l, 10).unwrap();
        let _p2 = limits.acquire(a, &l, 10).unwrap();
        assert_eq!(limits.acquire(a, &l, 10).err(), Some(Refused::PerIp(2)));
        let _p3 = limits.acquire(b, &l, 10).unwrap();
        assert_eq!(limits.acquire(b, &l, 10).err(), Some(Refused::Broker(3)));
        drop(p1);
        assert_eq!(limits.open(), 2);
        assert_eq!(limits.acquire(b, &l, 2).err(), Some(Refused::Listener(2)));
        assert!(limits.acquire(a, &l, 3).is_ok());
    }
}
