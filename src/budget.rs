//! Budgets held per source address and in total: connections, unauthenticated body bytes in memory, spooled bytes on disk.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// A source address as the limits see it: IPv4 as is, IPv6 by its /64, since one
/// host usually holds a whole /64 and could otherwise take a fresh address per connection.
pub(crate) fn address_group(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let segments = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(
                    segments[0],
                    segments[1],
                    segments[2],
                    segments[3],
                    0,
                    0,
                    0,
                    0,
                ))
            }
        },
    }
}

/// Which cap a request would exceed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exceeded {
    /// The gateway-wide cap: many senders together.
    Total,
    /// The cap for one source address (IPv6: one /64).
    PerAddress,
}

/// An amount (connections or bytes) that senders hold, capped in total and per address.
#[derive(Debug)]
pub(crate) struct Budget {
    total_cap: u64,
    per_address_cap: u64,
    held: Mutex<Holdings>,
}

#[derive(Debug, Default)]
struct Holdings {
    total: u64,
    by_address: HashMap<IpAddr, u64>,
}

impl Budget {
    /// A cap of 0 means no cap.
    pub(crate) fn new(total_cap: u64, per_address_cap: u64) -> Arc<Budget> {
        let cap = |value: u64| if value == 0 { u64::MAX } else { value };
        Arc::new(Budget {
            total_cap: cap(total_cap),
            per_address_cap: cap(per_address_cap),
            held: Mutex::new(Holdings::default()),
        })
    }

    /// Takes `amount` for `address`, or says which cap that would exceed (and takes nothing).
    pub(crate) fn take(self: &Arc<Self>, address: IpAddr, amount: u64) -> Result<Held, Exceeded> {
        let mut held = Held {
            budget: self.clone(),
            address: address_group(address),
            amount: 0,
        };
        held.grow(amount)?;
        Ok(held)
    }

    /// What all senders hold together.
    #[cfg(test)]
    pub(crate) fn total(&self) -> u64 {
        self.lock().total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Holdings> {
        // A panic while holding this lock cannot leave the counts half-updated.
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A share of a budget, given back when dropped.
#[derive(Debug)]
pub(crate) struct Held {
    budget: Arc<Budget>,
    address: IpAddr,
    amount: u64,
}

impl Held {
    /// Takes `amount` more, or says which cap that would exceed (and takes nothing).
    pub(crate) fn grow(&mut self, amount: u64) -> Result<(), Exceeded> {
        let budget = &self.budget;
        let mut holdings = budget.lock();
        let by_address = holdings.by_address.get(&self.address).copied().unwrap_or(0);
        if by_address.saturating_add(amount) > budget.per_address_cap {
            return Err(Exceeded::PerAddress);
        }
        if holdings.total.saturating_add(amount) > budget.total_cap {
            return Err(Exceeded::Total);
        }
        holdings.total += amount;
        *holdings.by_address.entry(self.address).or_insert(0) += amount;
        self.amount += amount;
        Ok(())
    }

    /// What this share holds.
    #[cfg(test)]
    pub(crate) fn amount(&self) -> u64 {
        self.amount
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.amount == 0 {
            return;
        }
        let mut holdings = self.budget.lock();
        holdings.total -= self.amount;
        if let Some(by_address) = holdings.by_address.get_mut(&self.address) {
            *by_address -= self.amount;
            if *by_address == 0 {
                holdings.by_address.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_address_and_in_total_and_gives_back_on_drop() {
        let budget = Budget::new(10, 6);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let mut first = budget.take(a, 4).unwrap();
        assert_eq!(first.grow(3), Err(Exceeded::PerAddress));
        assert_eq!(first.amount(), 4);
        let second = budget.take(b, 6).unwrap();
        assert_eq!(budget.take(b, 1).unwrap_err(), Exceeded::PerAddress);
        assert_eq!(first.grow(1), Err(Exceeded::Total));
        drop(second);
        first.grow(2).unwrap();
        assert_eq!(budget.total(), 6);
        drop(first);
        assert_eq!(budget.total(), 0);
        assert!(budget.lock().by_address.is_empty());
    }

    #[test]
    fn zero_means_no_cap() {
        let budget = Budget::new(0, 0);
        let held = budget.take("10.0.0.1".parse().unwrap(), u64::MAX / 2);
        assert!(held.is_ok());
    }

    #[test]
    fn ipv6_is_grouped_by_its_64() {
        let one: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let two: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_group(one), address_group(two));
        assert_ne!(address_group(one), address_group(other));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            address_group(mapped),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        let budget = Budget::new(0, 1);
        let _held = budget.take(one, 1).unwrap();
        assert_eq!(budget.take(two, 1).unwrap_err(), Exceeded::PerAddress);
        assert!(budget.take(other, 1).is_ok());
    }
}
