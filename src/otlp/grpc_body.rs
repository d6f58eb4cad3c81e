//! The gRPC port's request bodies, metered on their way to tonic's decoder: every byte takes
//! its share of the budget of bodies in flight (see `inflight`), the message must arrive within
//! the body deadline, and an Export carries one message: a second one on the same stream is
//! refused (UNIMPLEMENTED, gRPC's answer to a unary call sent more than one request) instead of
//! being read and dropped unseen.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;
use tonic::Status;
use tonic_types::{ErrorDetails, StatusExt};

use crate::inflight::{self, Held};

/// A request body with its share of the budget, its deadline and its message count.
pub struct Metered<B> {
    inner: B,
    held: Held,
    deadline: Pin<Box<Sleep>>,
    allowed: Duration,
    framing: Framing,
}

impl<B> Metered<B> {
    pub fn new(inner: B, budget: &inflight::Budget) -> Metered<B> {
        Metered {
            inner,
            held: budget.claim(),
            deadline: Box::pin(tokio::time::sleep(budget.deadline())),
            allowed: budget.deadline(),
            framing: Framing::default(),
        }
    }
}

/// Where the stream is in gRPC's length-prefixed framing: a five-byte header (compressed
/// flag, big-endian length), then the message.
#[derive(Default)]
struct Framing {
    header: [u8; 5],
    header_filled: usize,
    left: u64,
    messages: u32,
}

impl Framing {
    fn feed(&mut self, mut data: &[u8]) -> Result<(), Status> {
        while !data.is_empty() {
            if self.left > 0 {
                let take = data
                    .len()
                    .min(usize::try_from(self.left).unwrap_or(usize::MAX));
                self.left -= take as u64;
                data = &data[take..];
                continue;
            }
            let take = data.len().min(5 - self.header_filled);
            self.header[self.header_filled..self.header_filled + take]
                .copy_from_slice(&data[..take]);
            self.header_filled += take;
            data = &data[take..];
            if self.header_filled == 5 {
                self.header_filled = 0;
                self.messages += 1;
                if self.messages > 1 {
                    return Err(Status::unimplemented(
                        "an Export carries exactly one request message; this stream sent more \
                         (send each export as its own call)",
                    ));
                }
                let [_, a, b, c, d] = self.header;
                self.left = u64::from(u32::from_be_bytes([a, b, c, d]));
            }
        }
        Ok(())
    }
}

fn busy() -> Status {
    Status::with_error_details(
        tonic::Code::ResourceExhausted,
        "spanfold is holding as many export bodies as it may; retry after the delay",
        ErrorDetails::with_retry_info(Some(inflight::RETRY_AFTER)),
    )
}

impl<B> Body for Metered<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if let Err(refused) = this.framing.feed(data) {
                        return Poll::Ready(Some(Err(refused)));
                    }
                    if !this.held.grow(data.len()) {
                        return Poll::Ready(Some(Err(busy())));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Status::from_error(e.into())))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Status::unavailable(format!(
                    "the message did not arrive within {:?}; send it faster, or in smaller exports",
                    this.allowed
                ))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: u32) -> Vec<u8> {
        let mut f = vec![0];
        f.extend(len.to_be_bytes());
        f.extend(vec![7u8; len as usize]);
        f
    }

    #[test]
    fn one_message_in_any_split_passes_and_a_second_is_refused() {
        let one = frame(300);
        for cut in [0, 1, 3, 5, 6, 299, 305] {
            let mut f = Framing::default();
            f.feed(&one[..cut]).expect("first part");
            f.feed(&one[cut..]).expect("second part");
            assert_eq!((f.messages, f.left), (1, 0));
        }
        let mut f = Framing::default();
        let mut two = frame(0);
        two.extend(frame(4));
        let refused = f.feed(&two).expect_err("two messages");
        assert_eq!(refused.code(), tonic::Code::Unimplemented);
    }
}
