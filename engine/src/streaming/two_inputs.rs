//! What the two-input operators (regular, time-bounded and temporal joins)
//! share: both inputs merged into one stream of `(side, message)`, and one
//! watermark over the routers of both sides (their minimum, idle routers
//! left out), so a join never runs ahead of its slower input.

use futures::StreamExt;
use futures::stream::BoxStream;

use datafusion::error::Result;

use super::aggregate_input::MinWatermark;
use super::{END_OF_INPUT, Message, Receiver};

/// The merged inputs of a two-input operator: side 0 is the left input,
/// side 1 the right.
pub(super) struct TwoInputs {
    merged: futures::stream::Select<
        BoxStream<'static, (usize, Result<Message>)>,
        BoxStream<'static, (usize, Result<Message>)>,
    >,
    /// Router index of each side's first router in `watermark`.
    offsets: [usize; 2],
    /// Routers of both sides.
    routers: usize,
    watermark: MinWatermark,
}

impl TwoInputs {
    /// `*_routers`: how many routers feed each side watermarks.
    pub fn new(left: Receiver, left_routers: usize, right: Receiver, right_routers: usize) -> Self {
        let tag = |rx: Receiver, side: usize| {
            futures::stream::unfold(rx, move |mut rx| async move {
                rx.recv().await.map(|item| ((side, item), rx))
            })
            .boxed()
        };
        Self {
            merged: futures::stream::select(tag(left, 0), tag(right, 1)),
            offsets: [0, left_routers.max(1)],
            routers: left_routers.max(1) + right_routers.max(1),
            watermark: MinWatermark::new(left_routers.max(1) + right_routers.max(1)),
        }
    }

    /// The next message of either side, with its side; `None` when both
    /// inputs have ended.
    pub async fn next(&mut self) -> Option<(usize, Result<Message>)> {
        self.merged.next().await
    }

    /// The watermark over both sides now (ms; `i64::MIN` before any).
    pub fn current(&self) -> i64 {
        self.watermark.current()
    }

    /// Whether every router of `side` has sent the end-of-input watermark:
    /// that input will send no more rows.
    pub fn ended(&self, side: usize) -> bool {
        let routers = match side {
            0 => 0..self.offsets[1],
            _ => self.offsets[1]..self.routers,
        };
        routers
            .into_iter()
            .all(|r| self.watermark.of(r) == END_OF_INPUT)
    }

    /// Takes watermark `ts` from router `from` of `side`; the new minimum
    /// over both sides if it advanced.
    ///
    /// # Errors
    /// `from` is not one of the side's routers.
    pub fn advance(&mut self, side: usize, from: usize, ts: i64) -> Result<Option<i64>> {
        self.watermark.advance(self.offsets[side] + from, ts)
    }

    /// Marks router `from` of `side` idle; the new minimum if that advanced it.
    ///
    /// # Errors
    /// `from` is not one of the side's routers.
    pub fn idle(&mut self, side: usize, from: usize) -> Result<Option<i64>> {
        self.watermark.idle(self.offsets[side] + from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streaming::channel;

    #[test]
    fn an_input_has_ended_when_all_its_routers_sent_the_end() {
        let (_left_tx, left) = channel();
        let (_right_tx, right) = channel();
        let mut inputs = TwoInputs::new(left, 2, right, 1);
        assert!(!inputs.ended(0) && !inputs.ended(1));
        inputs.advance(0, 0, END_OF_INPUT).unwrap();
        inputs.advance(1, 0, 5).unwrap();
        assert!(!inputs.ended(0), "one of two left routers ended");
        inputs.advance(0, 1, END_OF_INPUT).unwrap();
        assert!(inputs.ended(0) && !inputs.ended(1));
        assert_eq!(inputs.current(), 5);
        inputs.advance(1, 0, END_OF_INPUT).unwrap();
        assert!(inputs.ended(1));
    }
}
