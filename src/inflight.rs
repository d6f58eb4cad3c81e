//! Export bodies in flight, bounded. Every byte of an export held while it arrives (an
//! OTLP/HTTP body, a gRPC message) takes a share of one [`Budget`] shared by both receivers,
//! given back when the body has been decoded or its connection dies. Beyond the budget an
//! export is refused at once with a retry delay (503, or RESOURCE_EXHAUSTED with RetryInfo), so
//! clients that stall half-sent bodies cannot pin the server's memory; and a body must arrive
//! within [`BODY_DEADLINE`], so a drip of one byte now and then (which keeps a connection from
//! ever being idle) cannot hold its share for long.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of export bodies held at once, over both receivers.
pub const BODY_BUDGET: usize = 64 * 1024 * 1024;
/// Longest a body may take to arrive, from its first byte asked for to its last.
pub const BODY_DEADLINE: Duration = Duration::from_secs(60);
/// What a client refused for want of budget is told to wait before it retries.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The bytes of bodies in flight, shared by both receivers.
#[derive(Clone)]
pub struct Budget {
    bytes: Arc<Semaphore>,
    deadline: Duration,
    refused: Arc<AtomicU64>,
}

impl Budget {
    pub fn new(bytes: usize, deadline: Duration) -> Budget {
        Budget {
            bytes: Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))),
            deadline,
            refused: Arc::default(),
        }
    }

    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Bytes of the budget free now (for `/metrics` and tests).
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }

    /// Bodies refused so far because the budget was spent (for `/metrics`).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// An empty claim, to grow as bytes arrive.
    pub fn claim(&self) -> Held {
        Held {
            permit: None,
            budget: self.clone(),
        }
    }
}

/// A share of the budget, given back when dropped.
pub struct Held {
    permit: Option<OwnedSemaphorePermit>,
    budget: Budget,
}

impl Held {
    /// Takes `n` more bytes, or says there are not enough free.
    pub fn grow(&mut self, n: usize) -> bool {
        if n == 0 {
            return true;
        }
        let Ok(n) = u32::try_from(n) else {
            return false;
        };
        match Arc::clone(&self.budget.bytes).try_acquire_many_owned(n) {
            Ok(more) => {
                match &mut self.permit {
                    Some(held) => held.merge(more),
                    None => self.permit = Some(more),
                }
                true
            }
            Err(_) => {
                self.budget.refused.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.permit.as_ref().map_or(0, |p| p.num_permits())
    }
}

/// Why a body was not read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    #[error(
        "spanfold is holding as many export bodies as it may; retry after {}s",
        RETRY_AFTER.as_secs()
    )]
    Busy,
    #[error("the body did not arrive within {0:?}; send it faster, or in smaller exports")]
    TooSlow(Duration),
    #[error("the body could not be read: {0}")]
    Broken(String),
}

/// Reads a whole body of at most `limit` bytes, holding its share of the budget, which the
/// caller keeps until it has decoded the body. A declared length over the limit is refused
/// before a byte is read, and one within it is claimed whole at once.
pub async fn read<B>(
    body: B,
    declared: Option<u64>,
    limit: usize,
    budget: &Budget,
) -> Result<(Bytes, Held), BodyError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut held = budget.claim();
    if let Some(n) = declared {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if n > limit {
            return Err(BodyError::TooLarge(limit));
        }
        if !held.grow(n) {
            return Err(BodyError::Busy);
        }
    }
    let collect = collect(body, limit, &mut held);
    match tokio::time::timeout(budget.deadline, collect).await {
        Ok(Ok(bytes)) => Ok((bytes, held)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(BodyError::TooSlow(budget.deadline)),
    }
}

async fn collect<B>(mut body: B, limit: usize, held: &mut Held) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    // Sized once when the length is declared (and claimed): growing by doubling would take
    // up to twice the body.
    let mut out = BytesMut::with_capacity(held.bytes());
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Broken(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if out.len() + data.len() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        // A declared length was claimed whole; a body without one (chunked) claims as it comes.
        if out.len() + data.len() > held.bytes()
            && !held.grow(out.len() + data.len() - held.bytes())
        {
            return Err(BodyError::Busy);
        }
        out.extend_from_slice(&data);
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};

    fn block<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn a_body_holds_its_bytes_until_dropped() {
        let budget = Budget::new(100, BODY_DEADLINE);
        let (bytes, held) = block(read(
            Full::new(Bytes::from_static(b"0123456789")),
            None,
            50,
            &budget,
        ))
        .expect("reads");
        assert_eq!(
            (bytes.len(), held.bytes(), budget.available()),
            (10, 10, 90)
        );
        drop(held);
        assert_eq!(budget.available(), 100);
    }

    #[test]
    fn beyond_the_budget_a_body_is_refused_and_what_it_took_is_given_back() {
        let budget = Budget::new(100, BODY_DEADLINE);
        let mut other = budget.claim();
        assert!(other.grow(95));
        let body = Full::new(Bytes::from(vec![0u8; 10]));
        assert_eq!(
            block(read(body, None, 50, &budget)).err(),
            Some(BodyError::Busy)
        );
        let body = Full::new(Bytes::from(vec![0u8; 10]));
        assert_eq!(
            block(read(body, Some(10), 50, &budget)).err(),
            Some(BodyError::Busy),
            "a declared length is claimed before reading"
        );
        assert_eq!(budget.available(), 5);
        drop(other);
        assert_eq!(budget.available(), 100);
    }

    #[test]
    fn over_the_limit_is_refused_declared_or_not() {
        let budget = Budget::new(100, BODY_DEADLINE);
        let body = Full::new(Bytes::from(vec![0u8; 60]));
        assert_eq!(
            block(read(body, Some(60), 50, &budget)).err(),
            Some(BodyError::TooLarge(50))
        );
        let body = Full::new(Bytes::from(vec![0u8; 60]));
        assert_eq!(
            block(read(body, None, 50, &budget)).err(),
            Some(BodyError::TooLarge(50))
        );
        assert_eq!(budget.available(), 100);
    }

    #[test]
    fn a_body_that_stalls_is_refused_at_the_deadline() {
        let budget = Budget::new(100, Duration::from_millis(50));
        let chunks = tokio_stream::iter(vec![Ok::<_, std::convert::Infallible>(
            http_body::Frame::data(Bytes::from_static(b"abc")),
        )]);
        let stalled = StreamBody::new(tokio_stream::StreamExt::chain(
            chunks,
            tokio_stream::pending(),
        ));
        assert_eq!(
            block(read(stalled, None, 50, &budget)).err(),
            Some(BodyError::TooSlow(Duration::from_millis(50)))
        );
        assert_eq!(budget.available(), 100);
    }
}
