//! The order in which a copy runs: items are surveyed a chunk at a time (the next chunk while
//! the one before is copied), each chunk ranked largest blob first, and copied with at most
//! `window` items under way.
//!
//! The rule that keeps it from deadlocking: every future that may hold a shared resource (a
//! registry's request slot, a single-flight lock, a transfer permit) is polled whenever it is
//! woken. Surveys and copies therefore run as two halves of one `join!`, connected by a
//! bounded channel that carries only finished surveys. A half waits for the channel only
//! between its futures (the surveys of a chunk have all finished before the first is sent;
//! a full copy window stops reading the channel, which holds plain data). Stream combinators
//! with back-pressure would not keep this rule: a `buffered` survey stream read through
//! `flatten` by a full `buffer_unordered` stops polling surveys that hold request slots the
//! copies are waiting for, and the whole copy hangs.

use futures::StreamExt as _;

/// How a run is cut and bounded.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Items surveyed (and ranked) together.
    pub chunk: usize,
    /// Surveys, and copies, under way at once.
    pub window: usize,
}

/// Surveys items `0..n` with `survey`, ranks each chunk by `rank` (highest first, then by
/// index), and copies each with `copy`. Returns `(index, result)` in completion order.
pub async fn run<T, R, SF, CF>(
    n: usize,
    shape: Shape,
    survey: impl Fn(usize) -> SF,
    rank: impl Fn(&T) -> u64,
    copy: impl Fn(usize, T) -> CF,
) -> Vec<(usize, R)>
where
    SF: Future<Output = T>,
    CF: Future<Output = R>,
{
    let chunk = shape.chunk.max(1);
    let window = shape.window.max(1);
    let (tx, rx) = tokio::sync::mpsc::channel::<(usize, T)>(chunk);
    let survey = &survey;
    let surveys = async move {
        let mut start = 0;
        while start < n {
            let end = (start + chunk).min(n);
            let started = std::time::Instant::now();
            let mut surveyed: Vec<(usize, T)> = futures::stream::iter(start..end)
                .map(|i| async move { (i, survey(i).await) })
                .buffer_unordered(window)
                .collect()
                .await;
            // Largest blob first: a big layer started last would run alone at the end, its one
            // stream the whole copy's tail.
            surveyed.sort_by_key(|(i, t)| (std::cmp::Reverse(rank(t)), *i));
            tracing::info!(
                images = surveyed.len(),
                seconds = %format!("{:.2}", started.elapsed().as_secs_f64()),
                "surveyed; largest blob first"
            );
            for s in surveyed {
                if tx.send(s).await.is_err() {
                    return;
                }
            }
            start = end;
        }
    };
    let received = futures::stream::unfold(rx, |mut rx| async { rx.recv().await.map(|s| (s, rx)) });
    let copy = &copy;
    let copies = received
        .map(|(i, t)| async move { (i, copy(i, t).await) })
        // Unordered: a slow image must not hold up the ones queued behind it.
        .buffer_unordered(window)
        .collect::<Vec<_>>();
    let ((), results) = futures::join!(surveys, copies);
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::sync::Semaphore;

    /// Surveys and copies share one request slot, and a survey holds it across a timer (a
    /// request in flight). A survey still running when the copy window fills must keep being
    /// polled, or the copies wait for its slot forever.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_survey_holding_a_slot_is_polled_while_the_copy_window_is_full() {
        let slot = Arc::new(Semaphore::new(1));
        let shape = Shape { chunk: 4, window: 2 };
        let survey = |i: usize| {
            let slot = slot.clone();
            async move {
                let _held = slot.acquire().await.expect("open");
                tokio::time::sleep(Duration::from_millis(1 + (i % 3) as u64)).await;
                i as u64
            }
        };
        let copy = |_i: usize, size: u64| {
            let slot = slot.clone();
            async move {
                let _held = slot.acquire().await.expect("open");
                tokio::time::sleep(Duration::from_millis(2)).await;
                size
            }
        };
        let done = tokio::time::timeout(Duration::from_secs(60), run(40, shape, survey, |s| *s, copy)).await;
        let mut results = done.expect("the copy deadlocked: a survey holding the slot was never polled again");
        results.sort();
        assert_eq!(results, (0..40).map(|i| (i, i as u64)).collect::<Vec<_>>());
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn each_chunk_is_copied_largest_first_and_every_item_once() {
        let order = std::sync::Mutex::new(Vec::new());
        let sizes = [3u64, 9, 1, 9, 5, 7, 2];
        let shape = Shape { chunk: 4, window: 1 };
        let results = run(
            sizes.len(),
            shape,
            |i| async move { sizes[i] },
            |s| *s,
            |i, _| {
                order.lock().unwrap().push(i);
                async move { i }
            },
        )
        .await;
        // Chunk [0..4) by size (ties by index), then chunk [4..7).
        assert_eq!(*order.lock().unwrap(), vec![1, 3, 0, 2, 5, 4, 6]);
        assert_eq!(results.len(), sizes.len());
    }

    #[tokio::test]
    async fn no_items_no_work() {
        let results: Vec<(usize, ())> =
            run(0, Shape { chunk: 0, window: 0 }, |_| async {}, |_: &()| 0, |_, _| async {}).await;
        assert!(results.is_empty());
    }
}
