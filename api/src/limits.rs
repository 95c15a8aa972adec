//! Abuse limits kept in memory: failed logins per account and per client
//! address, and open subscriptions per user.
//!
//! Both are per process: with several replicas behind a load balancer each
//! replica counts on its own, so the effective limits are up to N times the
//! configured ones, and a restart forgets them. That is acceptable for
//! slowing down password guessing and runaway clients; a shared store would
//! be needed for exact global limits.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

/// Above this many tracked keys, expired ones are dropped on the next failure.
const PRUNE_ABOVE: usize = 10_000;

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
enum LoginKey {
    Account(String),
    Address(IpAddr),
}

/// Failed logins within a sliding window, per account (email) and per
/// client address. In memory, per process (see the module comment).
#[derive(Debug)]
pub struct LoginLimiter {
    max_per_account: u32,
    max_per_address: u32,
    window: Duration,
    /// The most recent failures of each key, oldest first, at most the
    /// key's limit of them.
    failures: Mutex<HashMap<LoginKey, VecDeque<Instant>>>,
}

impl LoginLimiter {
    pub fn new(max_per_account: u32, max_per_address: u32, window: Duration) -> Self {
        LoginLimiter {
            max_per_account,
            max_per_address,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn limit(&self, key: &LoginKey) -> usize {
        match key {
            LoginKey::Account(_) => self.max_per_account as usize,
            LoginKey::Address(_) => self.max_per_address as usize,
        }
    }

    fn keys(email: &str, ip: Option<IpAddr>) -> impl Iterator<Item = LoginKey> {
        std::iter::once(LoginKey::Account(email.to_owned())).chain(ip.map(LoginKey::Address))
    }

    /// `RATE_LIMITED` while the account or the address has had its limit of
    /// failures within the window. A limit of 0 disables that check.
    pub fn check(&self, email: &str, ip: Option<IpAddr>) -> ApiResult<()> {
        let now = Instant::now();
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let mut wait: Option<(Duration, &'static str)> = None;
        for key in Self::keys(email, ip) {
            let limit = self.limit(&key);
            if limit == 0 {
                continue;
            }
            let Some(times) = failures.get(&key) else {
                continue;
            };
            let recent: Vec<&Instant> = times
                .iter()
                .filter(|t| now.duration_since(**t) < self.window)
                .collect();
            if recent.len() >= limit {
                // Allowed again once the oldest of the last `limit`
                // failures leaves the window.
                let oldest = recent[recent.len() - limit];
                let left = self.window.saturating_sub(now.duration_since(*oldest));
                let what = match key {
                    LoginKey::Account(_) => "for this account",
                    LoginKey::Address(_) => "from this address",
                };
                if wait.is_none_or(|(longest, _)| left > longest) {
                    wait = Some((left, what));
                }
            }
        }
        match wait {
            None => Ok(()),
            Some((left, what)) => {
                let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
                let seconds = seconds.max(1);
                Err(ApiError::RateLimited {
                    message: format!(
                        "too many failed logins {what}: try again in {seconds} seconds"
                    ),
                    retry_after_seconds: seconds,
                })
            }
        }
    }

    /// Counts a failed login against the account and the address.
    pub fn record_failure(&self, email: &str, ip: Option<IpAddr>) {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() > PRUNE_ABOVE {
            let window = self.window;
            failures.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|last| now.duration_since(*last) < window)
            });
        }
        for key in Self::keys(email, ip) {
            let limit = self.limit(&key).max(1);
            let times = failures.entry(key).or_default();
            times.push_back(now);
            while times.len() > limit {
                times.pop_front();
            }
        }
    }

    /// A successful login clears the account's failures (not the address's).
    pub fn record_success(&self, email: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(&LoginKey::Account(email.to_owned()));
    }
}

/// Open subscriptions per user, across all of their connections. In memory,
/// per process (see the module comment).
#[derive(Clone, Debug, Default)]
pub struct SubscriptionSlots {
    open: Arc<Mutex<HashMap<Uuid, usize>>>,
}

/// One open subscription; dropping it (the subscription's stream ended, was
/// stopped, or its connection closed) frees the slot.
#[derive(Debug)]
pub struct SubscriptionSlot {
    open: Arc<Mutex<HashMap<Uuid, usize>>>,
    user: Uuid,
}

impl SubscriptionSlots {
    /// A slot for one more subscription of `user`, or `RATE_LIMITED` when
    /// they already have `max` open.
    pub fn acquire(&self, user: Uuid, max: usize) -> ApiResult<SubscriptionSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(user).or_default();
        if *count >= max {
            return Err(ApiError::RateLimited {
                message: format!(
                    "too many open subscriptions: at most {max} per user; stop one (or close a connection) and subscribe again"
                ),
                retry_after_seconds: 1,
            });
        }
        *count += 1;
        Ok(SubscriptionSlot {
            open: self.open.clone(),
            user,
        })
    }

    /// How many subscriptions `user` has open.
    pub fn count(&self, user: Uuid) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&user).copied().unwrap_or(0)
    }
}

impl Drop for SubscriptionSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_limit_then_success_resets() {
        let limiter = LoginLimiter::new(2, 100, Duration::from_secs(60));
        let ip = Some("10.0.0.1".parse().unwrap());
        limiter.check("a@x", ip).unwrap();
        limiter.record_failure("a@x", ip);
        limiter.check("a@x", ip).unwrap();
        limiter.record_failure("a@x", ip);
        let Err(ApiError::RateLimited {
            retry_after_seconds,
            ..
        }) = limiter.check("a@x", ip)
        else {
            panic!("expected RATE_LIMITED");
        };
        assert!((1..=60).contains(&retry_after_seconds));
        limiter.check("b@x", ip).unwrap();
        limiter.record_success("a@x");
        limiter.check("a@x", ip).unwrap();
    }

    #[test]
    fn address_limit_spans_accounts() {
        let limiter = LoginLimiter::new(100, 3, Duration::from_secs(60));
        let ip = Some("10.0.0.2".parse().unwrap());
        for i in 0..3 {
            limiter.record_failure(&format!("u{i}@x"), ip);
        }
        assert_eq!(
            limiter.check("new@x", ip).map_err(|e| e.code()),
            Err("RATE_LIMITED")
        );
        limiter
            .check("new@x", Some("10.0.0.3".parse().unwrap()))
            .unwrap();
        limiter.check("new@x", None).unwrap();
    }

    #[test]
    fn failures_expire_with_the_window() {
        let limiter = LoginLimiter::new(1, 1, Duration::from_millis(20));
        limiter.record_failure("a@x", None);
        assert!(limiter.check("a@x", None).is_err());
        std::thread::sleep(Duration::from_millis(30));
        limiter.check("a@x", None).unwrap();
    }

    #[test]
    fn subscription_slots_are_freed_on_drop() {
        let slots = SubscriptionSlots::default();
        let user = Uuid::now_v7();
        let a = slots.acquire(user, 2).unwrap();
        let _b = slots.acquire(user, 2).unwrap();
        assert!(slots.acquire(user, 2).is_err());
        slots.acquire(Uuid::now_v7(), 2).unwrap();
        drop(a);
        assert_eq!(slots.count(user), 1);
        slots.acquire(user, 2).unwrap();
    }
}
